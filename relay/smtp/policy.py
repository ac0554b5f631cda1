"""Who may send to whom, decided at RCPT: no open relay, routes that reject, the
recipient limit.

A recipient whose route relays it onward is accepted only from a client in the
listener's `trusted_networks` or one that has authenticated; anyone else gets
554 5.7.1. Captured recipients are accepted from anyone, as a capture server must.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from relay import routing
from relay.config import ListenerConfig, RouteConfig
from relay.smtp import replies

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Verdict:
    """The route of one recipient, and the reply refusing it (None: accept)."""

    decision: routing.Decision
    refusal: str | None = None


def in_networks(client: str, networks: Sequence[Network]) -> bool:
    """Whether the IP address `client` lies in one of `networks` (IPv4-mapped IPv6 too)."""
    try:
        ip = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


class RecipientPolicy:
    """The RCPT checks of one listener."""

    def __init__(self, listener: ListenerConfig, routes: Sequence[RouteConfig]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in listener.trusted_networks
        )
        self.routes = tuple(routes)
        self.max_recipients = listener.max_recipients

    def trusted(self, client: str) -> bool:
        """Whether `client` may relay without authenticating."""
        return in_networks(client, self.networks)

    def check(self, address: str, client: str, authenticated: bool, accepted: int) -> Verdict:
        """The verdict on RCPT `address` from `client`, with `accepted` recipients so far."""
        decision = routing.route(address, self.routes)
        if accepted >= self.max_recipients:
            return Verdict(decision, replies.TOO_MANY_RECIPIENTS)
        if decision.action == "reject":
            return Verdict(decision, replies.RECIPIENT_REJECTED)
        if decision.action == "relay" and not (authenticated or self.trusted(client)):
            return Verdict(decision, replies.RELAY_DENIED)
        return Verdict(decision)
