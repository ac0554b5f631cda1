"""[[webhook]] and [suppression]: who hears about recipients' state changes, and which
addresses relay stops sending to (relay/events/ and relay/store/outbox.py act on them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from relay.config.durations import check_duration, parse_duration
from relay.config.settings import setting
from relay.config.tags import check_search

EVENTS = ("received", "delivered", "deferred", "failed", "bounced", "held", "released")
"""The events a webhook may ask for, in the order a message usually raises them."""


def check_url(value: str) -> str | None:
    """A check: an http:// or https:// URL."""
    if value.startswith(("http://", "https://")) and len(value) > len("https://"):
        return None
    return "an http:// or https:// URL"


def check_events(value: tuple[str, ...]) -> str | None:
    """A check: a non-empty list of event names."""
    unknown = [v for v in value if v not in EVENTS]
    if not value or unknown:
        return "a list of at least one of " + ", ".join(EVENTS)
    return None


def check_match(value: str) -> str | None:
    """A check: "" (every message) or a search the UI can read."""
    return check_search(value) if value else None


def check_positive(value: float) -> str | None:
    """A check: a number above 0."""
    return None if value > 0 else "a number above 0"


def check_age(value: str) -> str | None:
    """A check: a duration, not empty."""
    return check_duration(value) if value else 'a duration such as "24h"'


@dataclass(frozen=True)
class WebhookConfig:
    """[[webhook]]: a receiver that gets a signed JSON POST for each event it asks for."""

    url: str = setting("", "Where the events are POSTed (http:// or https://).", check_url)
    events: tuple[str, ...] = setting(
        EVENTS,
        "The events to send: received, delivered, deferred, failed, bounced, held, released.",
        check_events,
    )
    secret_env: str = setting(
        "",
        "Name of the environment variable that holds the signing secret (read at start);"
        ' "": events are sent unsigned.',
    )
    match: str = setting(
        "",
        'Only for mail this search matches, as typed in the UI (from:shop is:failed); "": all.',
        check_match,
    )
    timeout: float = setting(
        10.0, "Seconds a receiver has to answer; longer counts as a failure.", check_positive
    )
    max_age: str = setting(
        "24h",
        'Give up on an event not accepted after this long: "24h", "30m", "45s" or seconds.',
        check_age,
    )
    secret: str = field(default="", repr=False, metadata={"internal": True})

    @property
    def max_age_seconds(self) -> float:
        """`max_age` in seconds."""
        return parse_duration(self.max_age)


@dataclass(frozen=True)
class SuppressionConfig:
    """[suppression]: addresses that do not exist (or refuse us) are not tried again."""

    on_policy: bool = setting(
        False,
        "Also suppress an address whose upstream refused it for policy (5.7.1), not only"
        " one that does not exist (5.1.1, 5.1.10).",
    )
    action: Literal["fail", "hold"] = setting(
        "fail",
        'What happens to mail for a suppressed address: "fail" (at once, nothing sent) or'
        ' "hold" (kept for an operator to release or cancel).',
    )
    ttl: str = setting(
        "",
        'How long an address stays suppressed: "30d", "12h" or seconds; "": until removed.',
        check_duration,
    )

    @property
    def ttl_seconds(self) -> float:
        """`ttl` in seconds; 0 when entries never expire."""
        return parse_duration(self.ttl) if self.ttl else 0.0
