"""A real POP3 client from Debian, mpop: over STLS it fetches every message into a
maildir and deletes it on the server; each file holds the bytes sent over SMTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pop3_support import PASSWORDS, message, pop3_config, send
from tests.support import RunningRelay

MPOP = shutil.which("mpop")
pytestmark = pytest.mark.skipif(MPOP is None, reason="mpop is not installed (apt-get install mpop)")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RunningRelay]:
    """A relay with SMTP and the POP3 listeners on SQLite."""
    running = RunningRelay(pop3_config(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")).start()
    try:
        yield running
    finally:
        running.stop()


def mpop(relay: RunningRelay, maildir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run mpop against the STLS listener, delivering into `maildir`."""
    assert MPOP is not None
    command = [
        MPOP,
        "--host=127.0.0.1",
        f"--port={relay.port('pop3-tls')}",
        "--tls=on",
        "--tls-starttls=on",
        f"--tls-trust-file={relay.dev_cert}",
        "--tls-host-override=localhost",
        "--auth=user",
        "--user=alice",
        f'--passwordeval=echo "{PASSWORDS["alice"]}"',
        "--received-header=off",
        f"--delivery=maildir,{maildir}",
        f"--uidls-file={maildir.parent / 'uidls'}",
        "--half-quiet",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_mpop_fetches_every_message_byte_for_byte_and_deletes_them(
    relay: RunningRelay, tmp_path: Path
) -> None:
    """mpop's maildir holds each message as stored (SMTP's bytes after our Received
    header), and the server's mailbox is empty afterwards."""
    bodies = [
        message("plain"),
        message("dots", ".starts with a dot\r\n..two dots\r\n."),
        message("long", "z" * 990 + "\r\n" + "end"),
    ]
    ids = [send(relay, body) for body in bodies]
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    stored = [relay.raw(i) for i in ids]
    assert all(raw.endswith(body) for raw, body in zip(stored, bodies, strict=True))
    done = mpop(relay, maildir)
    assert done.returncode == 0, done.stderr + done.stdout
    fetched = sorted(path.read_bytes() for path in (maildir / "new").iterdir())
    # A maildir file ends its lines in LF: compare in that form.
    assert fetched == sorted(raw.replace(b"\r\n", b"\n") for raw in stored)
    assert all(relay.message(i) is None for i in ids)
