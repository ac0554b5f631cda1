"""The quick commands import none of the server's libraries: `relay --help`, `relay
check-config`, `relay healthcheck` and `relay sendmail` (run by cron jobs and PHP once per
message) start in tens of milliseconds. Checked on what a real run imports, not on a time
(bench/startup.py times them; docs/benchmarks.md has the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port
from tests.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
SERVER_LIBRARIES = (
    "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "aiosmtpd", "aiosmtplib", "starlette",
    "uvicorn", "jinja2", "asyncio",
)  # fmt: skip
PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["relay", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("relay", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
with open(out, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def run_relay(tmp_path: Path, *args: str, stdin: bytes = b"") -> tuple[int, set[str]]:
    """Run `relay ARGS` in a fresh interpreter: its exit code and the top-level packages
    it had imported by the end."""
    code, modules = run_relay_modules(tmp_path, *args, stdin=stdin)
    return code, {name.split(".")[0] for name in modules}


def run_relay_modules(tmp_path: Path, *args: str, stdin: bytes = b"") -> tuple[int, set[str]]:
    """Run `relay ARGS` in a fresh interpreter: its exit code and every module it had
    imported by the end."""
    out = tmp_path / "probe.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    result = json.loads(out.read_text())
    return result["code"], set(result["modules"])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["check-config", str(ROOT / "relay.toml")], ["queue", "--help"]],
    ids=["help", "check-config", "queue-help"],
)
def test_quick_commands_import_no_server_library(tmp_path: Path, args: list[str]) -> None:
    """`relay --help`, `relay check-config` and `relay queue --help` succeed without
    importing SQLAlchemy, Alembic, aiosmtpd, Starlette or even asyncio."""
    code, modules = run_relay(tmp_path, *args)
    assert code == 0
    assert "relay" in modules and not modules & set(SERVER_LIBRARIES)


def test_healthcheck_imports_no_server_library(tmp_path: Path) -> None:
    """`relay healthcheck` (a container runs it every 30 s) asks /healthz with http.client
    alone; nothing listens here, so it answers 1."""
    code, modules = run_relay(tmp_path, "healthcheck", "--web", f"127.0.0.1:{free_port()}")
    assert code == 1
    assert "http" in modules and not modules & set(SERVER_LIBRARIES)


def test_sendmail_sends_without_importing_a_server_library(tmp_path: Path) -> None:
    """`relay sendmail` hands a message to an SMTP server with smtplib alone."""
    message = b"Subject: cron\n\nThe nightly job finished.\n"
    with Upstream().start() as server:
        address = f"127.0.0.1:{server.port}"
        code, modules = run_relay(
            tmp_path, "sendmail", "--smtp", address, "ops@example.com", stdin=message
        )
        server.wait(lambda s: len(s.delivered) == 1)
    assert code == 0
    assert server.delivered[0].rcpt_tos == ("ops@example.com",)
    assert not modules & set(SERVER_LIBRARIES)


NOT_FOR_STATS = (
    "starlette", "uvicorn", "jinja2", "web", "aiosmtpd", "aiosmtplib", "alembic", "httpx",
    "dkim", "asyncpg", "relay.smtp", "relay.delivery", "relay.mime", "relay.checks",
    "relay.store.queue", "relay.store.retention", "relay.store.webhooks", "relay.store.store",
    "sqlalchemy.orm", "http.client",
)  # fmt: skip
"""What `relay stats` on SQLite must not import: the web, SMTP, delivery, MIME and
migration code, the Store's other nouns, PostgreSQL's driver, SQLAlchemy's ORM, the other
commands' own libraries."""


def test_stats_imports_the_database_and_counts_alone(tmp_path: Path) -> None:
    """`relay stats` on a SQLite database opens only the database and its counts: none of
    the web, SMTP, delivery, MIME, Alembic or asyncpg code is imported (each costs start-up
    time that `relay stats` at a million messages cannot spare)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    made = subprocess.run(
        [sys.executable, "-m", "relay", "db", "upgrade", "--db", url],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    code, modules = run_relay_modules(tmp_path, "stats", "--db", url, "--json")
    assert code == 0
    assert "sqlalchemy" in modules and "relay.store.counts" in modules
    loaded = {n for n in NOT_FOR_STATS if any(m == n or m.startswith(f"{n}.") for m in modules)}
    assert not loaded


NOT_FOR_SERVE = (
    "httpx", "cryptography", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql", "asyncpg", "alembic",
)  # fmt: skip
"""What the server's code does not import until used: httpx (webhooks, link checks),
`cryptography` (the development certificate), SQLAlchemy's ORM, the other databases'
dialects and driver, Alembic (migrations)."""


def imported_by(code: str) -> set[str]:
    """Every module a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=60, check=True, cwd=ROOT
    )
    return set(json.loads(done.stdout.decode().splitlines()[-1]))


def test_the_server_imports_what_it_uses_at_start() -> None:
    """`relay serve`'s modules (the app, the web UI, the SMTP, delivery and store code)
    leave httpx, `cryptography`, SQLAlchemy's ORM and the other databases' code to the
    first use: each is start-up time that a relay on SQLite without webhooks never needs."""
    modules = imported_by("import relay.app, relay.cli.serve, web, web.app")
    assert "sqlalchemy.ext.asyncio.engine" in modules and "starlette" in modules
    loaded = {n for n in NOT_FOR_SERVE if any(m == n or m.startswith(f"{n}.") for m in modules)}
    assert not loaded


def test_sqlalchemy_asyncio_is_whole_on_first_use() -> None:
    """After the store's import (which loads only sqlalchemy.ext.asyncio's engine), the
    package's other names still import, the ORM with them, as if imported as usual."""
    modules = imported_by(
        "import relay.store.database, sys\n"
        "assert 'sqlalchemy.orm' not in sys.modules\n"
        "from sqlalchemy.ext.asyncio import AsyncSession, AsyncEngine, create_async_engine\n"
        "import sqlalchemy.ext.asyncio as package\n"
        "assert package.async_sessionmaker and AsyncSession.__module__.endswith('session')\n"
        "assert create_async_engine is package.create_async_engine"
    )
    assert "sqlalchemy.orm" in modules and "sqlalchemy.ext.asyncio.session" in modules


def test_every_name_the_store_exports_resolves() -> None:
    """relay.store's names, imported on first use, are each the object its module
    defines, and each of `__all__` has a module to come from (a name added to one list
    and not the other fails here, not in a user's import)."""
    import importlib

    import relay.store as store

    homes = store._HOMES
    assert set(homes) == set(store.__all__)
    for name, home in homes.items():
        assert getattr(store, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError):
        getattr(store, "NoSuchName")  # noqa: B009
