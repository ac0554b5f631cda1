"""The retry policy (pure): reply classes, errors without a reply, backoff, the age limit."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from relay.config import DeliveryConfig
from relay.delivery import retry
from relay.errors import DeliveryError
from relay.status import Status

POLICY = DeliveryConfig()
DAY = 86400.0


@pytest.mark.parametrize(
    ("code", "message", "status", "enhanced", "text"),
    [
        (250, "2.0.0 OK: queued as 42", Status.DELIVERED, "2.0.0", "OK: queued as 42"),
        (251, "User not local; will forward", Status.DELIVERED, "", "User not local; will forward"),
        (421, "4.3.2 Service shutting down", Status.DEFERRED, "4.3.2", "Service shutting down"),
        (450, "4.2.1 Mailbox busy", Status.DEFERRED, "4.2.1", "Mailbox busy"),
        (
            451,
            "4.7.1 Greylisted,\n please retry",
            Status.DEFERRED,
            "4.7.1",
            "Greylisted, please retry",
        ),
        (452, "4.5.3 Too many recipients", Status.DEFERRED, "4.5.3", "Too many recipients"),
        (550, "5.1.1 No such user", Status.FAILED, "5.1.1", "No such user"),
        (553, "Mailbox name not allowed", Status.FAILED, "", "Mailbox name not allowed"),
        (554, "5.7.1 Relay access denied", Status.FAILED, "5.7.1", "Relay access denied"),
    ],
)
def test_reply_codes_decide_delivered_deferred_or_failed(
    code: int, message: str, status: Status, enhanced: str, text: str
) -> None:
    """2xx delivers, 4xx defers, 5xx fails; the enhanced code is split from the text."""
    reply = retry.parse(code, message)
    assert (reply.status, reply.enhanced, reply.text) == (status, enhanced, text)


@pytest.mark.parametrize(
    ("error", "enhanced", "words"),
    [
        (aiosmtplib.SMTPConnectError("Error connecting: refused"), "4.4.1", "cannot connect"),
        (aiosmtplib.SMTPConnectTimeoutError("no banner"), "4.4.1", "timed out"),
        (aiosmtplib.SMTPReadTimeoutError("no reply"), "4.4.2", "timed out"),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), "4.4.2", "connection lost"),
        (ConnectionResetError("reset by peer"), "4.4.2", "connection lost"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "4.7.5", "TLS failed"),
        (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported"), "4.3.0", "STARTTLS"),
    ],
)
def test_errors_without_a_reply_defer(error: Exception, enhanced: str, words: str) -> None:
    """Refused or lost connections, timeouts and TLS failures defer, with an RFC 3463 code."""
    reply = retry.from_exception(error)
    assert reply.code is None
    assert reply.status is Status.DEFERRED
    assert reply.enhanced == enhanced
    assert words in reply.text


def test_tls_failure_wrapped_in_a_connect_error_is_named() -> None:
    """A certificate failure during connect is reported as a TLS failure, not a refusal."""
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as inner:
            raise aiosmtplib.SMTPConnectError("Error connecting") from inner
    except aiosmtplib.SMTPConnectError as outer:
        reply = retry.from_exception(outer)
    assert reply.enhanced == retry.TLS_FAILED


def test_refused_connection_is_recorded_in_the_systems_words() -> None:
    """A refused connect keeps the reason ("Connection refused"), not only an errno."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 25)")
        except OSError as inner:
            raise aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1 on port 25") from inner
    except aiosmtplib.SMTPConnectError as outer:
        reply = retry.from_exception(outer)
    assert reply.text == (
        "cannot connect: Connection refused: Error connecting to 127.0.0.1 on port 25"
    )


def test_refused_login_defers_until_the_configuration_is_fixed() -> None:
    """A 535 to AUTH keeps the mail queued (a wrong password must not bounce mail)."""
    reply = retry.from_exception(
        aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication credentials invalid")
    )
    assert (reply.code, reply.status, reply.enhanced) == (535, Status.DEFERRED, "5.7.8")


def test_server_replies_inside_exceptions_keep_code_and_class() -> None:
    """A refused RCPT raised as an exception is the same reply as a returned one."""
    reply = retry.from_exception(
        aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "x@example.com")
    )
    assert (reply.code, reply.enhanced, reply.status) == (550, "5.1.1", Status.FAILED)
    local = retry.from_exception(DeliveryError(0, "domain has no mail server", False, "5.1.2"))
    assert (local.code, local.enhanced, local.status) == (None, "5.1.2", Status.FAILED)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, 60.0),
        (2, 300.0),
        (3, 900.0),
        (4, 1800.0),
        (5, 3600.0),
        (6, 7200.0),
        (7, 7200.0),
        (50, 7200.0),
    ],
)
def test_default_schedule_then_every_two_hours(failures: int, expected: float) -> None:
    """About 1 m, 5 m, 15 m, 30 m, 1 h, then every 2 h."""
    assert retry.backoff(failures, POLICY.retry_schedule, 0.0, 0.0) == expected


@pytest.mark.parametrize(
    ("spread", "expected"), [(-1.0, 54.0), (0.0, 60.0), (1.0, 66.0), (5.0, 66.0)]
)
def test_jitter_moves_the_wait_by_at_most_its_fraction(spread: float, expected: float) -> None:
    """With 10 % jitter the first wait lies between 54 and 66 seconds."""
    assert retry.backoff(1, POLICY.retry_schedule, 0.1, spread) == pytest.approx(expected)


def test_decide_defers_until_max_age_then_fails() -> None:
    """A transient reply defers while the message is young; past max age it fails."""
    busy = retry.parse(451, "4.3.0 Try again later")
    received = 1000.0
    young = retry.decide(busy, 1, received, received + 10, POLICY, 0.0)
    assert young == retry.Verdict(Status.DEFERRED, received + 10 + 60)
    old = retry.decide(busy, 40, received, received + 5 * DAY, POLICY, 0.0)
    assert old == retry.Verdict(Status.FAILED, None, gave_up=True)
    permanent = retry.decide(retry.parse(550, "no"), 1, received, received, POLICY, 0.0)
    assert permanent == retry.Verdict(Status.FAILED)
    done = retry.decide(retry.parse(250, "ok"), 1, received, received + 5 * DAY, POLICY, 0.0)
    assert done == retry.Verdict(Status.DELIVERED)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ("5.1.1 bad\x00user\r\nsecond line", "bad?user second line"),
        ("4.3.0 \udcff\udcfe escape \x1b[31m", "?? escape ?[31m"),
    ],
)
def test_reply_text_is_made_printable(message: str, text: str) -> None:
    """What an upstream says is kept on one line without NUL, control characters or bytes
    that were not UTF-8 (PostgreSQL refuses NUL; no page should show the rest)."""
    assert retry.parse(550, message).text == text
