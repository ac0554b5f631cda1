"""[checks]: the spam, link and HTML checks run on a stored message when asked."""

from __future__ import annotations

from dataclasses import dataclass

from relay.config.settings import setting
from relay.config.values import check_optional_hostport, positive


@dataclass(frozen=True)
class ChecksConfig:
    """[checks]: the spam, link and HTML checks run on a message when asked."""

    spamassassin: str = setting(
        "",
        "SpamAssassin's spamd at HOST:PORT for the spam check; empty: no spam check.",
        check_optional_hostport,
    )
    spamassassin_timeout: float = setting(
        10.0, "Seconds the spam check waits for spamd before it reports an error.", positive
    )
    link_check_allow_private: bool = setting(
        False,
        "Let the link check reach private, loopback, link-local and other non-public"
        " addresses; off, such links are refused (no request forgery through relay).",
    )
    link_check_timeout: float = setting(
        10.0, "Seconds the link check gives each link, redirects included.", positive
    )
    link_check_concurrency: int = setting(
        5, "Most links the link check requests at once.", positive
    )
