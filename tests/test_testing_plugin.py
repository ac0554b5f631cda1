"""relay's pytest plugin, run by pytest's own `pytester` in fresh processes: registered by
the package, cheap to import, a relay per session (started, or given), a mailbox per test,
waits without polling, chaos for one test's addresses, isolation under pytest-xdist."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from relay.config import ChaosConfig
from tests.support import RunningRelay, make_config

pytest_plugins = ("pytester",)

QUIET = ("-p", "no:cacheprovider", "-p", "no:asyncio", "-q")
"""Inner runs: no cache, no pytest-asyncio (not needed there)."""

HEAVY = (
    "asyncio",
    "sqlalchemy",
    "aiosmtpd",
    "aiosmtplib",
    "starlette",
    "uvicorn",
    "httpx",
    "relay.app",
    "relay.store",
    "relay.smtp",
    "web",
)


def test_the_package_registers_the_plugin_with_pytest() -> None:
    """`pip install relay` gives pytest the entry point pytest11: relay → relay.testing.plugin."""
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("relay") == "relay.testing.plugin"


def test_importing_the_plugin_is_cheap_and_starts_nothing(figures: dict[str, str]) -> None:
    """With pytest loaded, importing the plugin takes under 50 ms, imports none of the
    server's libraries, and starts no thread or process."""
    probe = (
        "import sys, threading, pytest, multiprocessing.process as mp\n"
        "before = set(sys.modules)\n"
        "import relay.testing.plugin\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(threading.active_count(), len(mp.active_children()), *new)\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    threads, children, *modules = result.stdout.split()
    assert (threads, children) == ("1", "0")
    heavy = [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert heavy == []
    [line] = [x for x in result.stderr.splitlines() if x.endswith("| relay.testing.plugin")]
    cumulative_us = int(line.split("|")[1])
    figures["pytest plugin import (ms)"] = f"{cumulative_us / 1000:.1f}"
    assert cumulative_us < 50_000


TEST_FIXTURES = """
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

PNG = b"\\x89PNG\\r\\n\\x1a\\n fake"


def send(server, to, subject, sender="app@example.com"):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["X-Test"] = "yes"
    msg.set_content("Hi. Confirm at https://app.example/confirm?t=1.")
    msg.add_alternative('<p>Hi <a href="https://app.example/html">here</a></p>', subtype="html")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="logo.png")
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as smtp:
        smtp.send_message(msg)


def test_message_fields(relay_server, mailbox):
    send(relay_server, mailbox.address("alice"), "Welcome")
    [message] = mailbox.wait_for(subject="Welcome", to=mailbox.address("alice"))
    assert message.subject == "Welcome" and message.sender == "app@example.com"
    assert message.to == [mailbox.address("alice")]
    assert "Confirm at" in message.text and "<a href" in message.html
    assert message.headers["X-Test"] == "yes" and message.headers.get_all("Received")
    [attachment] = message.attachments
    assert (attachment.name, attachment.content_type) == ("logo.png", "image/png")
    assert attachment.data == PNG
    assert message.links == ["https://app.example/html", "https://app.example/confirm?t=1"]
    assert message.raw.startswith(b"Received: ")
    assert [m.id for m in mailbox.messages()] == [message.id]


def test_addresses_are_unique_to_each_test(relay_server, mailbox):
    assert mailbox.address("alice").endswith(".test")
    assert mailbox.messages() == []  # the other test's alice is not this one
    send(relay_server, "someone@elsewhere.example", "Not mine")
    mailbox.assert_no_message(within=0.2)


def test_wait_for_counts_and_is_woken_by_the_server(relay_server, mailbox):
    seen = []
    asked = mailbox.client.request
    def request(method, path, *args, **kwargs):
        seen.append(path.split("?")[0])
        return asked(method, path, *args, **kwargs)
    mailbox.client.request = request
    later = threading.Timer(1.0, send, (relay_server, mailbox.address("b"), "Later"))
    later.start()
    [message] = mailbox.wait_for(subject="Later", timeout=20)
    later.join()
    assert message.subject == "Later"
    assert seen == ["/api/v1/search", "/api/v1/wait", "/api/v1/search"]
    send(relay_server, mailbox.address("c"), "Later")
    assert len(mailbox.wait_for(subject="Later", count=2)) == 2


def test_wait_for_times_out(mailbox):
    said = "1 message to @.* with subject 'Never': 0 within 0.3 s"
    with pytest.raises(AssertionError, match=said):
        mailbox.wait_for(subject="Never", timeout=0.3)


def test_assert_no_message_fails_on_mail_that_arrives(relay_server, mailbox):
    threading.Timer(0.3, send, (relay_server, mailbox.address("x"), "Surprise")).start()
    with pytest.raises(AssertionError, match="expected no message .* got 'Surprise'"):
        mailbox.assert_no_message(within=5)


def test_chaos_fails_only_this_mailbox_and_goes_away(relay_server, mailbox):
    with mailbox.chaos(stage="rcpt", code=451, first=1) as rule:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(relay_server, mailbox.address("d"), "Retry")
        assert refused.value.recipients[mailbox.address("d")][0] == 451
        send(relay_server, "other@elsewhere.example", "Untouched")
        send(relay_server, mailbox.address("d"), "Retry")
        assert (rule.hits, rule.matched) == (1, 2)
        assert [r["id"] for r in relay_server.api.rules()] == [rule.id]
    assert relay_server.api.rules() == []
    assert len(mailbox.wait_for(subject="Retry")) == 1


def test_chaos_at_mail_fails_this_mailbox_as_sender(relay_server, mailbox):
    with mailbox.chaos(stage="mail", code=554, enhanced="5.7.1", text="Blocked"):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(relay_server, "x@elsewhere.example", "From me", sender=mailbox.address("me"))
        assert (refused.value.smtp_code, refused.value.smtp_error) == (554, b"5.7.1 Blocked")


def test_chaos_before_any_address_is_refused(mailbox):
    with pytest.raises(ValueError, match="comes before any address"):
        with mailbox.chaos(stage="helo"):
            pass
"""


def test_the_fixtures_in_a_session_of_their_own(pytester: pytest.Pytester) -> None:
    """relay_server starts a relay for the session; mailbox gives each test its addresses,
    messages with their parts, a wait the server wakes, and chaos for it alone."""
    pytester.makepyfile(test_mail=TEST_FIXTURES)
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=8)


ISOLATED = """
import smtplib
import pytest

@pytest.mark.parametrize("n", range(8))
def test_only_my_mail(relay_server, mailbox, n):
    with smtplib.SMTP(relay_server.smtp_host, relay_server.smtp_port) as smtp:
        for i in range(3):
            data = f"Subject: {n}-{i}\\r\\n\\r\\nx"
            smtp.sendmail("app@example.com", [mailbox.address(f"u{i}")], data)
    found = mailbox.wait_for(count=3)
    assert sorted(m.subject for m in found) == [f"{n}-{i}" for i in range(3)]
    assert len(mailbox.messages()) == 3
    print("RELAY", relay_server.web_url)
"""


def _relays(result: pytest.RunResult) -> set[str]:
    return set(re.findall(r"RELAY (\S+)", result.stdout.str()))


@pytest.mark.slow
def test_under_xdist_each_worker_has_its_relay_and_tests_see_only_their_mail(
    pytester: pytest.Pytester,
) -> None:
    """-n 2: two relays (one per worker), every test finds exactly its own three messages."""
    pytester.makepyfile(test_isolated=ISOLATED)
    result = pytester.runpytest_subprocess(*QUIET, "-n", "2", "-rA")
    result.assert_outcomes(passed=8)
    assert len(_relays(result)) == 2


@pytest.fixture
def external(tmp_path: Path) -> Iterator[RunningRelay]:
    """A relay already running, chaos on, that inner sessions are pointed at."""
    config = make_config(f"sqlite+aiosqlite:///{tmp_path / 'ext.db'}", chaos=ChaosConfig(True))
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_an_external_relay_shared_by_two_xdist_workers(
    pytester: pytest.Pytester, external: RunningRelay
) -> None:
    """--relay-url and --relay-smtp: both workers use the one relay given (none started),
    and still each test sees only its own mail among everyone's 24 messages."""
    pytester.makepyfile(test_isolated=ISOLATED)
    smtp = f"127.0.0.1:{external.smtp_port}"
    result = pytester.runpytest_subprocess(
        *QUIET, "-n", "2", "-rA", "--relay-url", external.web_url, "--relay-smtp", smtp
    )
    result.assert_outcomes(passed=8)
    assert _relays(result) == {external.web_url}
    assert external.count() == 24


def test_an_external_relay_from_the_environment(
    pytester: pytest.Pytester, external: RunningRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELAY_URL and RELAY_SMTP name the relay when the options are not given."""
    monkeypatch.setenv("RELAY_URL", external.web_url)
    monkeypatch.setenv("RELAY_SMTP", f"127.0.0.1:{external.smtp_port}")
    pytester.makepyfile(
        test_env=f'''
def test_given(relay_server, mailbox):
    assert relay_server.web_url == "{external.web_url}"
    assert relay_server.smtp_port == {external.smtp_port} and relay_server.process is None
    import smtplib
    with smtplib.SMTP(relay_server.smtp_host, relay_server.smtp_port) as smtp:
        smtp.sendmail("a@example.com", [mailbox.address()], "Subject: env\\r\\n\\r\\nx")
    assert mailbox.wait_for(subject="env")[0].subject == "env"
'''
    )
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)
    assert external.count() == 1


def test_half_an_external_relay_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """--relay-url without --relay-smtp: the session says both are needed."""
    pytester.makepyfile(test_half="def test_x(relay_server):\n    pass\n")
    result = pytester.runpytest_subprocess(*QUIET, "--relay-url", "http://127.0.0.1:9")
    result.stderr.fnmatch_lines(["*needs both --relay-url and --relay-smtp*"])
    assert result.ret != 0
