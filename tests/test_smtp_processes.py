"""`[server] smtp_processes`: helper processes accept SMTP on the same ports, store what
they accept, get it delivered at once, and stop with their primary, even a killed one."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError
from tests.cluster import Node
from tests.upstream import Upstream

pytestmark = pytest.mark.slow

CONNECTIONS = 40
"""Sessions held open at once: all of them landing on one of two processes by chance has
a probability of 2 ** -39."""


def _primary(directory: Path, db_url: str, upstream: Upstream) -> Node:
    """relay serve with smtp_processes = 2, relaying everything to `upstream`; a minute
    between queue polls, so that only a wakeup gets a helper's mail out in time."""
    return Node(
        "primary",
        directory,
        db_url,
        upstream.port,
        server_extra="smtp_processes = 2",
        delivery="poll_interval = 60.0",
    )


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording upstream on 127.0.0.1."""
    with Upstream().start() as server:
        yield server


def _helpers(primary: int) -> list[int]:
    """Process ids of the children of `primary` that run as SMTP helpers."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == primary and b"--smtp-helper" in argv:
            found.append(int(entry))
    return found


def _owners(pids: list[int], port: int) -> dict[int, int]:
    """For each established connection to local `port`: the client's port → the pid (one
    of `pids`) that holds the server's end of it."""
    holder = {}
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                holder[target[8:-1]] = pid
    owners = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in holder:
                owners[remote_port] = holder[fields[9]]
    return owners


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited, not yet reaped by its (dead) parent's reaper
            return True
        time.sleep(0.05)
    return False


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def _connect(port: int, count: int, into: list[smtplib.SMTP]) -> None:
    """Open `count` SMTP sessions to `port`, each past EHLO, into `into` (the caller
    closes them)."""
    for _ in range(count):
        client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        client.ehlo("client.example")
        into.append(client)


def _mail(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = f"user{number}@example.org"
    msg["Subject"] = f"Message {number}"
    msg.set_content(f"Body {number}\n")
    return msg


def test_helpers_share_the_port_and_their_mail_is_delivered_at_once(
    tmp_path: Path, db_url: str, upstream: Upstream
) -> None:
    """With smtp_processes = 2 both processes take connections on the one port; every
    message gets its 250, is stored, and reaches the upstream within seconds although the
    queue is polled once a minute (the helper tells the primary: a pipe on SQLite, NOTIFY
    on PostgreSQL)."""
    node = _primary(tmp_path, db_url, upstream).start()
    clients: list[smtplib.SMTP] = []
    try:
        node.wait_ready()
        assert node.proc is not None
        assert "smtp: 2 processes share the listeners' ports" in node.log()
        helpers = _helpers(node.proc.pid)
        assert len(helpers) == 1, helpers
        _connect(node.smtp_port, CONNECTIONS, clients)
        owners = _owners([node.proc.pid, *helpers], node.smtp_port)
        owner = [owners[c.sock.getsockname()[1]] for c in clients]
        by_helper = [n for n, pid in enumerate(owner) if pid != node.proc.pid]
        by_primary = [n for n, pid in enumerate(owner) if pid == node.proc.pid]
        assert by_helper and by_primary, f"one process took every connection: {owner}"
        # The primary's own mail first, delivered; then the helper's, which only the
        # helper's word can get out before the next poll.
        for number in by_primary:
            assert clients[number].send_message(_mail(number)) == {}
        upstream.wait(lambda u: len(u.delivered) >= len(by_primary), within=15)
        sent = time.monotonic()
        for number in by_helper:
            assert clients[number].send_message(_mail(number)) == {}
        upstream.wait(lambda u: len(u.delivered) >= CONNECTIONS, within=15)
        took = time.monotonic() - sent
        for transaction in upstream.delivered:  # each with its own bytes (SQLite: via the pipe)
            (rcpt,) = transaction.rcpt_tos
            number = int(rcpt.removeprefix("user").partition("@")[0])
            assert f"Subject: Message {number}\r\n".encode() in transaction.data
            assert transaction.data.endswith(f"\r\n\r\nBody {number}\r\n".encode())
        for client in clients:
            client.quit()
    finally:
        for client in clients:
            client.close()
        assert node.end(signal.SIGTERM) == 0, node.log()
    assert sorted(t.rcpt_tos[0] for t in upstream.delivered) == sorted(
        f"user{n}@example.org" for n in range(CONNECTIONS)
    )
    assert took < 15
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.split("///", 1)[1]) as conn:
            assert conn.execute("SELECT count(*) FROM message").fetchone() == (CONNECTIONS,)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_helper_stops_with_its_primary(
    tmp_path: Path, upstream: Upstream, sig: signal.Signals
) -> None:
    """SIGTERM to the primary stops its helper too; after SIGKILL, which leaves the
    primary no chance to say anything, the helper sees its stdin close and stops. Either
    way no process is left accepting on the port."""
    node = _primary(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}", upstream)
    node.start()
    try:
        node.wait_ready()
        assert node.proc is not None
        helpers = _helpers(node.proc.pid)
        assert len(helpers) == 1
        assert not _refused(node.smtp_port)
        code = node.end(sig)
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
    assert code == (0 if sig is signal.SIGTERM else -signal.SIGKILL)
    assert _gone(helpers[0], within=20), node.log()
    assert _refused(node.smtp_port)


def test_the_primary_serves_on_when_a_helper_dies(tmp_path: Path, upstream: Upstream) -> None:
    """A helper killed under it is logged by the primary, which goes on taking and
    relaying mail on the port."""
    node = _primary(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}", upstream)
    node.start()
    try:
        node.wait_ready()
        assert node.proc is not None
        (helper,) = _helpers(node.proc.pid)
        os.kill(helper, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while "exited with code -9; the other processes keep serving" not in node.log():
            assert time.monotonic() < deadline, node.log()
            time.sleep(0.05)
        for number in range(5):
            with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as client:
                assert client.send_message(_mail(number)) == {}
        upstream.wait(lambda u: len(u.delivered) >= 5, within=15)
        assert node.proc.poll() is None
    finally:
        assert node.end(signal.SIGTERM) == 0, node.log()


def test_sigterm_during_start_up_stops_every_process(tmp_path: Path, upstream: Upstream) -> None:
    """SIGTERM while the primary waits for its helper to start: start-up is cancelled,
    what had started is stopped, the primary exits 0 and no helper is left behind."""
    node = _primary(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}", upstream)
    node.start()
    assert node.proc is not None
    try:
        deadline = time.monotonic() + 30
        while "smtp listener 'primary'" not in node.log():
            assert time.monotonic() < deadline and node.proc.poll() is None, node.log()
            time.sleep(0.005)
        helpers = []
        while not helpers and time.monotonic() < deadline:  # spawned, not yet serving
            helpers = _helpers(node.proc.pid)
        assert "smtp: 2 processes" not in node.log(), "the helper started too soon to test"
        started = time.monotonic()
        code = node.end(signal.SIGTERM)
        took = time.monotonic() - started
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
    assert code == 0, node.log()
    assert took < 15, node.log()
    assert helpers and _gone(helpers[0], within=20), node.log()
    assert _refused(node.smtp_port)
    assert "web UI on" not in node.log()


def test_more_than_one_process_needs_fixed_ports(tmp_path: Path) -> None:
    """Port 0 means another free port in each process: refused at load, naming the key."""
    path = tmp_path / "relay.toml"
    path.write_text('[server]\nsmtp_processes = 2\n[[listener]]\naddress = "127.0.0.1:0"\n')
    with pytest.raises(ConfigError, match=r"listener\[0\]\.address: expected a fixed port"):
        load_config(path)
    path.write_text("[server]\nsmtp_processes = 0\n")
    with pytest.raises(ConfigError, match=r"server\.smtp_processes: expected a whole number"):
        load_config(path)
    path.write_text("[server]\nsmtp_in_primary = false\n")
    with pytest.raises(ConfigError, match=r"server\.smtp_in_primary: expected true while"):
        load_config(path)


def test_a_primary_that_accepts_no_smtp_leaves_it_to_its_helper(
    tmp_path: Path, db_url: str, upstream: Upstream
) -> None:
    """With smtp_in_primary = false the helper holds every SMTP connection, the primary
    none, and the mail it takes is relayed by the primary at once (a poll a minute)."""
    node = Node(
        "primary",
        tmp_path,
        db_url,
        upstream.port,
        server_extra="smtp_processes = 2\nsmtp_in_primary = false",
        delivery="poll_interval = 60.0",
    ).start()
    clients: list[smtplib.SMTP] = []
    try:
        node.wait_ready()
        assert node.proc is not None
        assert "this one accepts none (smtp_in_primary = false)" in node.log()
        (helper,) = _helpers(node.proc.pid)
        _connect(node.smtp_port, 8, clients)
        owners = _owners([node.proc.pid, helper], node.smtp_port)
        assert {owners[c.sock.getsockname()[1]] for c in clients} == {helper}
        for number, client in enumerate(clients):
            assert client.send_message(_mail(number)) == {}
        upstream.wait(lambda u: len(u.delivered) >= len(clients), within=15)
        for client in clients:
            client.quit()
    finally:
        for client in clients:
            client.close()
        assert node.end(signal.SIGTERM) == 0, node.log()


async def test_what_a_helper_stores_reaches_the_primary(tmp_path: Path) -> None:
    """Each `message` line of a helper is published as an event, reported to `on_message`
    (the primary's group commit then counts as busy, so that its search indexer keeps
    waiting for ingest to be idle) and, when the message's bytes follow the line, handed
    to `on_raw` first (the primary's worker then sends them without reading them back).
    The helper is a real process."""
    from relay.config import StorageConfig
    from relay.processes import Helpers
    from relay.store import Events
    from relay.store.batch import GroupCommit
    from relay.store.database import Database

    raw = b"Subject: hi\r\n\r\nmessage 01FAKE 1 99\r\n"  # a line-like body changes nothing
    script = (
        "import sys; out = sys.stdout.buffer; out.write(b'ready\\n'); "
        "out.write(b'message 01CAPTURED00000000000000 0\\n'); "
        f"out.write(b'message 01RELAYED000000000000000 1 {len(raw)}\\n' + {raw!r}); "
        "out.flush(); sys.stdin.read()"
    )
    db = Database(StorageConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"))
    committer = GroupCommit(db)
    events = Events()
    told: list[tuple[str, object]] = []

    def on_message() -> None:
        committer.touch()
        told.append(("idle", committer.idle_for()))

    try:
        await asyncio.sleep(0.05)
        idle_before = committer.idle_for()
        async with events.subscribe() as seen:
            helpers = Helpers(
                [sys.executable, "-c", script],
                1,
                events,
                on_message=on_message,
                on_raw=lambda message_id, data: told.append((message_id, data)),
            )
            await helpers.start()
            first = await asyncio.wait_for(seen.get(), 10)
            second = await asyncio.wait_for(seen.get(), 10)
            await helpers.stop(grace=5)
    finally:
        await db.close()
    assert [(e.kind, e.message_id, e.due) for e in (first, second)] == [
        ("message", "01CAPTURED00000000000000", False),
        ("message", "01RELAYED000000000000000", True),
    ]
    assert idle_before >= 0.05
    assert [t[0] for t in told] == ["idle", "01RELAYED000000000000000", "idle"]
    assert told[1][1] == raw
    assert all(isinstance(t[1], float) and t[1] < 0.01 for t in told if t[0] == "idle")
