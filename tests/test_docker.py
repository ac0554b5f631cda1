"""The container, as far as it can be checked without a Docker engine: the build context is
only what the Dockerfile copies, and the HEALTHCHECK command follows the config's web
address (run for real against a running relay)."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import RunningRelay, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` leave `path` (relative, with "/") out of the
    context: the last pattern that matches the path or a folder above it decides, "!"
    patterns keep. (Docker's rules; fnmatch's "*" also crosses "/", which these patterns
    do not rely on.)"""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, glob) for p in prefixes):
            verdict = not keep
    return verdict


def dockerignore() -> list[str]:
    """The patterns of .dockerignore, without comments and blank lines."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copied_sources() -> list[str]:
    """What the Dockerfile's COPY lines take from the build context."""
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def test_build_context_is_only_what_the_dockerfile_copies(tmp_path: Path) -> None:
    """Every file the Dockerfile copies goes to the daemon; the virtualenv, databases,
    caches, tests and .git do not."""
    patterns = dockerignore()
    sources = copied_sources()
    assert set(sources) == {"pyproject.toml", "README.md", "relay", "web", "docker/relay.toml"}
    for source in sources:
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        for file in filter(Path.is_file, files):
            name = str(file.relative_to(ROOT))
            assert ignored(name, patterns) == ("__pycache__" in name), name
    left_out = [
        ".venv/bin/python", ".venv/lib/python3.11/site-packages/x.py", "relay.db",
        "relay.db-wal", "data/relay.db", "relay-tls/cert.pem", ".git/HEAD", "build/x",
        "tests/test_config.py", "tests/js/node_modules/x/index.js", "relay.egg-info/PKG-INFO",
        "relay/__pycache__/cli.cpython-311.pyc", "docs/screenshots/list.png",
    ]  # fmt: skip
    assert [path for path in left_out if not ignored(path, patterns)] == []


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD (exec form), and check it reads the config that
    the container's CMD serves with."""
    joined = DOCKERFILE.replace("\\\n", " ")
    check = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", joined, re.MULTILINE)
    serve = re.search(r"^CMD (\[.*\])$", joined, re.MULTILINE)
    assert check is not None and serve is not None
    command: list[str] = json.loads(check.group(1))
    served: list[str] = json.loads(serve.group(1))
    config = command[command.index("--config") + 1]
    assert served[:2] == ["relay", "serve"] and served[served.index("--config") + 1] == config
    return command


def run_healthcheck(config: Path) -> subprocess.CompletedProcess[str]:
    """The container's HEALTHCHECK command with `config` in place of its config file, run
    with this interpreter's `relay`."""
    command = healthcheck_command()
    command[command.index("--config") + 1] = str(config)
    assert command[0] == "relay"
    return subprocess.run(
        [sys.executable, "-m", "relay", *command[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_healthcheck_asks_the_configured_web_address(
    relay: RunningRelay, tmp_path: Path, host: str
) -> None:
    """HEALTHCHECK exits 0 when /healthz answers at the config's [web] address (any port,
    a wildcard host asked on loopback) and 1 when nothing answers there."""
    port = relay.relay.web_address[1]
    config = tmp_path / "relay.toml"
    config.write_text(f'[web]\naddress = "{host}:{port}"\n')
    healthy = run_healthcheck(config)
    assert healthy.returncode == 0, healthy.stderr
    config.write_text(f'[web]\naddress = "{host}:{free_port()}"\n')
    unhealthy = run_healthcheck(config)
    assert unhealthy.returncode == 1
    assert "unhealthy: no answer from 127.0.0.1:" in unhealthy.stderr


def test_healthcheck_of_a_broken_config_is_unhealthy_not_reserved(tmp_path: Path) -> None:
    """A config that does not load is exit 1 (unhealthy) with the problem: Docker
    reserves exit 2."""
    config = tmp_path / "relay.toml"
    config.write_text('[web]\naddress = "nowhere"\n')
    result = run_healthcheck(config)
    assert result.returncode == 1 and "web.address: expected HOST:PORT" in result.stderr
