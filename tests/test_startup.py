"""`relay serve` start-up failures are one sentence, and `relay hash-password` works:
the real command in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import passwords
from tests.support import free_port


def relay_command(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m relay ARGS`, returning its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port that something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def write_config(path: Path, listeners: list[tuple[str, str]]) -> Path:
    """A config with the given (name, address) plain listeners, quiet below warnings."""
    lines = ['[server]\nlog_level = "warning"\n']
    for name, address in listeners:
        lines.append(f'[[listener]]\nname = "{name}"\naddress = "{address}"\n')
    lines.append('[web]\naddress = "127.0.0.1:0"\n')
    lines.append(f'[storage]\nurl = "sqlite+aiosqlite:///{path.parent / "relay.db"}"\n')
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("first", "Address already in use"),
        ("second", "Address already in use"),
        ("unassigned", "Cannot assign requested address"),
    ],
)
def test_listener_that_cannot_bind_stops_startup_with_one_line(
    tmp_path: Path, busy_port: int, which: str, reason: str
) -> None:
    """Start-up fails with exit 1 and one line naming the listener and its address."""
    free = f"127.0.0.1:{free_port()}"
    busy = f"127.0.0.1:{busy_port}"
    listeners = {
        "first": [("submit", busy), ("mx", free)],
        "second": [("submit", free), ("mx", busy)],
        "unassigned": [("mx", "192.0.2.1:2525")],  # TEST-NET-1: never this host's
    }[which]
    name, address = listeners[0] if which == "first" else listeners[-1]
    config = write_config(tmp_path / "relay.toml", listeners)
    result = relay_command("serve", "--config", str(config))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(f"listener {name!r} cannot listen on {address}: {reason}")
    assert "Traceback" not in result.stderr


def test_smtp_flag_stays_one_plain_listener(tmp_path: Path, busy_port: int) -> None:
    """--smtp replaces the configured listeners by one plain one at the address given."""
    config = write_config(tmp_path / "relay.toml", [("submit", "127.0.0.1:1"), ("mx", "x:2")])
    address = f"127.0.0.1:{busy_port}"
    result = relay_command("serve", "--config", str(config), "--smtp", address)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"listener 'submit' cannot listen on {address}:"
                                          " Address already in use")  # fmt: skip


def test_config_that_cannot_work_is_refused_before_start(tmp_path: Path) -> None:
    """A submission listener without users stops `relay serve` with exit 2, naming the key."""
    config = tmp_path / "relay.toml"
    config.write_text('[[listener]]\nname = "submission"\nkind = "submission"\n')
    result = relay_command("serve", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"relay: {config}: listener[0].auth: expected users")
    assert len(result.stderr.strip().splitlines()) == 1


def test_hash_password_reads_stdin_and_prints_a_checkable_hash() -> None:
    """`relay hash-password` hashes the line on stdin; the hash verifies that password."""
    result = relay_command("hash-password", stdin="s3cret pass\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$scrypt$ln=")
    assert passwords.verify(b"s3cret pass", hashed)
    assert not passwords.verify(b"s3cret pass\n", hashed)


def test_hash_password_takes_no_password_argument() -> None:
    """A password on the command line (visible in ps and history) is a usage error."""
    result = relay_command("hash-password", "s3cret")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
