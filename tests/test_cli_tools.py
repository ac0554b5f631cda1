"""`relay sendmail` and `relay stats` as processes, against a running relay and its database."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cli.sendmail import EX_NOUSER, EX_OK, EX_TEMPFAIL, EX_USAGE
from relay.config import RouteConfig
from relay.status import Status
from tests import mail
from tests.support import RunningRelay, free_port, make_config


def relay_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run `python -m relay ARGS` with `stdin`; its result."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args], input=stdin, capture_output=True, timeout=60
    )


def sendmail(relay: RunningRelay, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """`relay sendmail --smtp <the relay> ARGS` with the message on stdin."""
    return relay_cli("sendmail", "--smtp", f"127.0.0.1:{relay.smtp_port}", *args, stdin=stdin)


@pytest.fixture
def blocking(sqlite_url: str) -> Iterator[RunningRelay]:
    """A relay whose routes reject blocked.example."""
    routes = (RouteConfig(match="blocked.example", action="reject"),)
    running = RunningRelay(make_config(sqlite_url, route=routes)).start()
    try:
        yield running
    finally:
        running.stop()


def only_message(relay: RunningRelay):  # type: ignore[no-untyped-def]
    """The one stored message's summary row."""
    page = relay.call(relay.relay.store.messages.page(0, 2))
    assert page.total == 1
    return page.messages[0]


def test_recipients_as_arguments(relay: RunningRelay) -> None:
    """Message on stdin, recipients as arguments, -f sets the envelope sender."""
    result = sendmail(relay, "-f", "app@example.com", "bob@example.org", stdin=mail.plain())
    assert result.returncode == EX_OK, result.stderr
    row = only_message(relay)
    assert row.mail_from == "app@example.com" and row.subject == "Plain hello"
    assert [r.address for r in row.recipients] == ["bob@example.org"]


def test_t_reads_recipients_from_headers_and_drops_bcc(relay: RunningRelay) -> None:
    """-t sends to To, Cc and Bcc, and the stored message has no Bcc header."""
    message = (
        b"From: app@example.com\nTo: Bob <bob@example.org>\nCc: carol@example.org\n"
        b"Bcc: secret@example.net,\n  other@example.net\nSubject: Hi\n\nBody\n"
    )
    result = sendmail(relay, "-t", "-i", stdin=message)
    assert result.returncode == EX_OK, result.stderr
    row = only_message(relay)
    assert sorted(r.address for r in row.recipients) == [
        "bob@example.org",
        "carol@example.org",
        "other@example.net",
        "secret@example.net",
    ]
    raw = relay.raw(row.id)
    assert b"Bcc" not in raw and b"secret" not in raw and b"\r\n\r\nBody\r\n" in raw


def test_missing_headers_are_added(relay: RunningRelay) -> None:
    """From (with -F), Date and Message-ID are added when the message lacks them."""
    result = sendmail(relay, "-f", "app@example.com", "-F", "The App", "-oi", "bob@example.org",
                      stdin=b"Subject: bare\n\nbody\n")  # fmt: skip
    assert result.returncode == EX_OK, result.stderr
    raw = relay.raw(only_message(relay).id)
    assert b"From: The App <app@example.com>\r\n" in raw
    assert b"\r\nDate: " in raw and b"\r\nMessage-ID: <" in raw


@pytest.mark.parametrize(
    ("flags", "body"),
    [([], b"first\r\n"), (["-i"], b"first\r\n.\r\nafter the dot\r\n"),
     (["-oi"], b"first\r\n.\r\nafter the dot\r\n")],
)  # fmt: skip
def test_a_lone_dot_ends_the_message_unless_i(
    relay: RunningRelay, flags: list[str], body: bytes
) -> None:
    """Without -i a line of "." ends the message, as with sendmail; with -i or -oi it stays."""
    message = b"Subject: dots\n\nfirst\n.\nafter the dot\n"
    result = sendmail(relay, *flags, "bob@example.org", stdin=message)
    assert result.returncode == EX_OK, result.stderr
    assert relay.raw(only_message(relay).id).endswith(b"\r\n\r\n" + body)


def test_no_recipients_is_a_usage_error(relay: RunningRelay) -> None:
    """No addresses and no -t: exit 64, nothing sent."""
    result = sendmail(relay, stdin=mail.plain())
    assert result.returncode == EX_USAGE and b"no recipients" in result.stderr
    assert relay.count() == 0


def test_unreachable_relay_is_a_temporary_failure() -> None:
    """Nobody listening at --smtp: exit 75 (try again later)."""
    result = relay_cli(
        "sendmail", "--smtp", f"127.0.0.1:{free_port()}", "bob@example.org", stdin=mail.plain()
    )
    assert result.returncode == EX_TEMPFAIL and b"cannot reach the relay" in result.stderr


def test_refused_recipients_exit_67(blocking: RunningRelay) -> None:
    """Some recipients refused: the others get the message, exit 67 names the refused."""
    result = sendmail(blocking, "--json", "bob@example.org", "x@blocked.example",
                      stdin=mail.plain())  # fmt: skip
    assert result.returncode == EX_NOUSER
    assert b"x@blocked.example" in result.stderr
    report = json.loads(result.stdout)
    assert "queued as" in report["reply"] and list(report["refused"]) == ["x@blocked.example"]
    assert [r.address for r in only_message(blocking).recipients] == ["bob@example.org"]
    every = sendmail(blocking, "x@blocked.example", stdin=mail.plain())
    assert every.returncode == EX_NOUSER and blocking.count() == 1


def test_stats_json_and_table(relay: RunningRelay) -> None:
    """`relay stats --json` reads the server's database; the default output is a table."""
    store = relay.relay.store
    for rcpts in (["a@example.com"], ["b@example.com", "c@example.com"]):
        relay.call(store.add_message(_message(rcpts)))
    relay.call(store.set_read([relay.call(store.messages.page(0, 1)).messages[0].id], True))
    url = relay.config.storage.url
    result = relay_cli("stats", "--db", url, "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["messages"]["total"] == 2 and stats["messages"]["unread"] == 1
    assert stats["messages"]["captured"] == 2
    assert stats["recipients"]["captured"] == 3 and stats["recipients"]["deferred"] == 0
    assert stats["queue_depth"] == 0 and stats["oldest_deferred_age"] is None
    assert stats["database"]["size"] > 0
    text = relay_cli("stats", "--db", url).stdout.decode()
    assert "messages" in text and "queue depth" in text and "captured" in text


def test_stats_without_a_database_exits_3(tmp_path: Path) -> None:
    """A database that does not exist: exit 3 with one line saying so, nothing created."""
    result = relay_cli("stats", "--db", f"sqlite+aiosqlite:///{tmp_path}/missing.db")
    assert result.returncode == 3 and b"no relay database" in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_stats_with_a_bad_url_exits_2() -> None:
    """A malformed --db is a usage error: exit 2."""
    assert relay_cli("stats", "--db", "oracle://x").returncode == 2


def _message(rcpts: list[str]):  # type: ignore[no-untyped-def]
    from tests.test_store import new_message

    made = new_message(mail.plain(), rcpts)
    return dataclasses.replace(
        made, recipients=[dataclasses.replace(r, status=Status.CAPTURED) for r in made.recipients]
    )
