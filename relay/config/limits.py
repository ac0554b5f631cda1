"""How fast mail may go to one destination, and when the destination pauses: the keys that
`[upstream.NAME]`, `[mx]` and `[mx.domains."DOMAIN"]` share.

A domain's table under `[mx.domains]` sets only what differs from `[mx]`: the keys it
leaves out are taken from `[mx]` (`inherit_mx_limits`, on the file's data, before the
tables are built).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from relay.config.settings import setting
from relay.config.values import non_negative, positive


@dataclasses.dataclass(frozen=True)
class DestinationLimits:
    """A destination's rate limit and circuit breaker (each MX domain has its own)."""

    max_messages_per_minute: int = setting(
        0,
        "Most messages sent to this destination per minute (a burst of that many, then"
        " evenly), over every process on the database; more wait, never fail; 0: no limit.",
        non_negative,
    )
    breaker_failures: int = setting(
        5,
        "Refused connections, 421 or 4.7.x replies in a row after which the whole"
        " destination pauses (its recipients wait together, then one probe goes); 0: never.",
        non_negative,
    )
    breaker_pause: float = setting(
        60.0,
        "Seconds of the first pause; each pause that ends in a failed probe doubles.",
        positive,
    )
    breaker_max_pause: float = setting(
        3600.0, "Seconds the doubling pause never exceeds.", positive
    )


LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(DestinationLimits))


def inherit_mx_limits(data: dict[str, Any]) -> None:
    """In the file's data: each `[mx.domains."DOMAIN"]` table takes the limits it does not
    set from `[mx]`, and its domain in lower case without a trailing dot."""
    mx = data.get("mx")
    if not isinstance(mx, dict) or not isinstance(mx.get("domains"), dict):
        return
    domains: dict[str, Any] = {}
    for domain, table in mx["domains"].items():
        if isinstance(table, dict):
            table = {**{k: mx[k] for k in LIMIT_KEYS if k in mx}, **table}
        domains[domain.lower().rstrip(".")] = table
    mx["domains"] = domains
