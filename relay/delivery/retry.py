"""Retry policy (pure): what a reply or an error means for a recipient, and when to try again.

2xx delivers; 4xx, timeouts, refused or lost connections and TLS failures defer with a
jittered backoff from the configured schedule; 5xx fails at once. A recipient whose message
is older than `max_age` when it is deferred again fails instead, keeping the last reply
(RFC 5321 4.5.4.1: give up after 4-5 days).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from relay.config import DeliveryConfig
from relay.errors import DeliveryError
from relay.status import Status

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")

# RFC 3463 codes for failures that come with no SMTP reply.
NO_ANSWER = "4.4.1"  # connection refused or timed out
BAD_CONNECTION = "4.4.2"  # connection lost or reply timed out
TLS_FAILED = "4.7.5"  # cryptographic failure: TLS could not be set up
LOCAL_TRANSIENT = "4.3.0"
SERVICE_CLOSING = 421
POLICY = "4.7."  # RFC 3463 X.7.X: security or policy status (rate limits, blocks, TLS)


@dataclass(frozen=True)
class Reply:
    """The answer to a delivery attempt for one recipient.

    `code` is the upstream's reply code, or None when there was no reply (the connection
    failed); `enhanced` the RFC 3463 code from the reply text ("" when it had none).
    """

    code: int | None
    text: str
    enhanced: str = ""
    transient: bool = True

    @property
    def status(self) -> Status:
        """Delivered, deferred or failed: what this reply makes of a recipient (age aside)."""
        if self.code is not None and 200 <= self.code < 300:
            return Status.DELIVERED
        return Status.DEFERRED if self.transient else Status.FAILED

    def __str__(self) -> str:
        parts = [str(self.code) if self.code is not None else "", self.enhanced, self.text]
        return " ".join(p for p in parts if p)


def printable(text: str) -> str:
    """Text from the wire on one line, safe to store and show: control characters (NUL
    among them, which PostgreSQL text cannot hold) and undecodable bytes become "?"."""
    return _UNPRINTABLE.sub("?", " ".join(text.split()))


def parse(code: int, message: str) -> Reply:
    """A reply from its code and text; an enhanced status code at the start is split off."""
    text = printable(message)  # one line: multi-line replies are joined
    enhanced = ""
    match = _ENHANCED.match(text)
    if match:
        enhanced = ".".join(match.groups())
        text = text[match.end() :]
    return Reply(code, text, enhanced, transient=not 500 <= code < 600)


def local(text: str, enhanced: str, transient: bool = True) -> Reply:
    """A reply made here, for a failure that came with no SMTP reply."""
    return Reply(None, printable(text), enhanced, transient)


class TLSFailed(aiosmtplib.SMTPException):
    """TLS to a destination could not be set up; the message names the key to change."""


def tls_reason(exc: BaseException) -> str | None:
    """Why TLS failed, when an SSL error lies under `exc` ("certificate verify failed:
    self-signed certificate"); None when it is not a TLS failure."""
    tls = _ssl_error(exc)
    if tls is None:
        return None
    verify = getattr(tls, "verify_message", None)
    return f"certificate verify failed: {verify}" if verify else str(tls)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _system_reason(exc: BaseException) -> str | None:
    """The operating system's words for the error under `exc` ("Connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return None


def from_exception(exc: BaseException) -> Reply:
    """The reply that an exception raised while delivering stands for."""
    if isinstance(exc, DeliveryError):
        return Reply(exc.code or None, exc.text, exc.enhanced, exc.transient)
    if isinstance(exc, TLSFailed):
        return local(exc.message, TLS_FAILED)
    reason = tls_reason(exc)
    if reason is not None:
        return local(f"TLS failed: {reason}", TLS_FAILED)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # A refused login is a configuration problem: keep the mail until it is fixed.
        reply = parse(exc.code, exc.message)
        return Reply(reply.code, f"authentication failed: {reply.text}", reply.enhanced, True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return parse(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
        return local(f"timed out: {exc.message}", NO_ANSWER)
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        why = _system_reason(exc)
        return local(f"cannot connect: {why + ': ' if why else ''}{exc.message}", NO_ANSWER)
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return local(f"timed out waiting for the server: {exc}", BAD_CONNECTION)
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
        return local(f"connection lost: {exc}", BAD_CONNECTION)
    if isinstance(exc, OSError):
        return local(f"cannot connect: {exc.strerror or exc}", NO_ANSWER)
    return local(f"{type(exc).__name__}: {exc}", LOCAL_TRANSIENT)


def pushes_back(reply: Reply) -> bool:
    """Whether `reply` is a destination pushing back on everything: a refused (or
    unanswered) connection, 421, or a 4.7.x policy reply."""
    return (
        reply.code == SERVICE_CLOSING
        or reply.enhanced.startswith(POLICY)
        or (reply.code is None and reply.enhanced == NO_ANSWER)
    )


def pushback(replies: Sequence[Reply]) -> Reply | None:
    """The reply by which a destination pushed back on a whole transaction, for its
    circuit breaker; None when any recipient was delivered or none was pushed back."""
    if any(r.status is Status.DELIVERED for r in replies):
        return None
    return next((r for r in replies if pushes_back(r)), None)


def answered(replies: Sequence[Reply]) -> bool:
    """Whether the destination itself answered (a reply with a code that is no push-back):
    its breaker's count of push-backs in a row starts again."""
    return pushback(replies) is None and any(r.code is not None for r in replies)


def backoff(failures: int, schedule: Sequence[float], jitter: float, spread: float) -> float:
    """Seconds to wait after the `failures`-th failed attempt (1 for the first).

    The schedule's last value repeats; `spread` in [-1, 1] moves the wait by up to
    `jitter` of itself (callers pass a random number, tests a fixed one).
    """
    base = schedule[min(max(failures, 1), len(schedule)) - 1]
    return base * (1 + jitter * max(-1.0, min(1.0, spread)))


@dataclass(frozen=True)
class Verdict:
    """The recipient's new status and, when deferred, when to try again."""

    status: Status
    next_attempt_at: float | None = None
    gave_up: bool = False


def decide(
    reply: Reply,
    attempts: int,
    received_at: float,
    now: float,
    policy: DeliveryConfig,
    spread: float,
) -> Verdict:
    """What a recipient becomes after `reply` on its `attempts`-th attempt."""
    status = reply.status
    if status is not Status.DEFERRED:
        return Verdict(status)
    if now - received_at >= policy.max_age:
        return Verdict(Status.FAILED, gave_up=True)
    delay = backoff(attempts, policy.retry_schedule, policy.retry_jitter, spread)
    return Verdict(Status.DEFERRED, now + delay)
