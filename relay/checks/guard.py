"""The request-forgery guard of the link check: which addresses a link may reach.

A host name is resolved first, by an injectable `Resolver` (the system's by default), and
every address it resolves to must be public: a loopback, private, link-local, multicast,
unspecified, reserved or otherwise non-global address refuses the link, unless the policy
allows private addresses or the address lies in one of its allowed networks. The caller
then connects to the address that was checked (`Pinned.address`), never resolving again,
so a name that answers differently the second time (DNS rebinding) cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""A host name → its IP addresses as text; raises OSError when the name does not resolve."""

KINDS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda a: a.is_unspecified),
    ("loopback", lambda a: a.is_loopback),
    ("link-local", lambda a: a.is_link_local),
    ("multicast", lambda a: a.is_multicast),
    ("reserved", lambda a: a.is_reserved),
    ("private", lambda a: a.is_private),
    ("non-public", lambda a: not a.is_global),
)
"""The kinds of address the guard refuses, in the order their names are given."""


class Refused(Exception):
    """A link may not be reached; the message says why, for the link's Status."""


async def system_resolver(host: str) -> list[str]:
    """The addresses of `host` from the system's resolver (getaddrinfo, /etc/hosts too)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_kind(address: IPAddress) -> str | None:
    """The kind of a non-public address ("loopback", "private", ...), None for a public one.

    An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it maps.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return next((name for name, test in KINDS if test(address)), None)


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be reached: public ones, and more when allowed."""

    allow_private: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()
    """Networks reachable although not public (e.g. a staging host on 10.0.0.0/8)."""

    def refusal(self, address: IPAddress) -> str | None:
        """The kind of `address` when it may not be reached ("loopback", ...), else None."""
        if self.allow_private or any(address in net for net in self.allow_networks):
            return None
        return address_kind(address)


@dataclass(frozen=True)
class Pinned:
    """A host checked by the guard and the one address to connect to."""

    host: str
    address: IPAddress
    literal: bool
    """The host was an IP address already: nothing was resolved."""


async def pin(host: str, resolver: Resolver, policy: AddressPolicy) -> Pinned:
    """Resolve `host` and check every address; raises `Refused` saying why it may not be
    reached (not resolvable, or an address the policy refuses)."""
    try:
        return _checked(host, [ipaddress.ip_address(host)], policy, literal=True)
    except ValueError:
        pass
    try:
        answers = await resolver(host)
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise Refused(f"cannot resolve {host}: no address")
    return _checked(host, addresses, policy, literal=False)


def _checked(host: str, addresses: list[IPAddress], policy: AddressPolicy, literal: bool) -> Pinned:
    for address in addresses:
        kind = policy.refusal(address)
        if kind is not None and literal:
            raise Refused(f"refused: {address} is a {kind} address")
        if kind is not None:
            raise Refused(f"refused: {host} resolves to {address}, a {kind} address")
    return Pinned(host, addresses[0], literal)
