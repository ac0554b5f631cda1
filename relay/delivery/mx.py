"""MX lookup: a recipient domain → its mail hosts in preference order, with their addresses.

RFC 5321 5.1: MX records sorted by preference (equal preferences in random order); a
domain with no MX record is its own mail host (its A/AAAA records); a "null MX"
(RFC 7505) or a domain that does not exist fails at once; a DNS failure defers.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from relay.errors import DeliveryError

log = logging.getLogger(__name__)

NO_SUCH_DOMAIN = "5.1.2"  # bad destination system address
NULL_MX = "5.1.10"  # RFC 7505: the domain accepts no mail
DNS_FAILED = "4.4.3"  # directory server failure
NO_ROUTE = "4.4.4"  # unable to route


@dataclass(frozen=True)
class MxHost:
    """One mail host of a domain: its name, MX preference and IP addresses (IPv4 first)."""

    name: str
    preference: int
    addresses: tuple[str, ...]


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


class MxResolver:
    """Looks up mail hosts with dnspython (the system's resolver configuration by default)."""

    def __init__(
        self, resolver: dns.asyncresolver.Resolver | None = None, rng: random.Random | None = None
    ) -> None:
        self._resolver = resolver
        self._rng = rng or random.Random()

    @property
    def resolver(self) -> dns.asyncresolver.Resolver:
        """The dnspython resolver (made on first use: reading resolv.conf is I/O)."""
        if self._resolver is None:
            self._resolver = dns.asyncresolver.Resolver()
            self._resolver.cache = dns.resolver.Cache()
        return self._resolver

    async def hosts(self, domain: str) -> list[MxHost]:
        """The mail hosts of `domain` that have addresses, most preferred first.

        Raises DeliveryError: permanent for a domain that does not exist or accepts no mail,
        transient when DNS fails or no mail host has an address.
        """
        domain = domain.rstrip(".").lower()
        try:
            answer = await self.resolver.resolve(_absolute(domain), "MX")
            records = [(int(r.preference), r.exchange.to_text().rstrip(".")) for r in answer]
        except dns.resolver.NXDOMAIN:
            raise DeliveryError(
                0, f"domain {domain} does not exist", False, NO_SUCH_DOMAIN
            ) from None
        except dns.resolver.NoAnswer:
            records = [(0, domain)]  # RFC 5321 5.1: the domain is its own mail host
        except dns.exception.DNSException as exc:
            raise DeliveryError(
                0, f"MX lookup for {domain} failed: {exc}", True, DNS_FAILED
            ) from None
        if len(records) == 1 and records[0][1] == "":
            raise DeliveryError(0, f"domain {domain} accepts no mail (null MX)", False, NULL_MX)
        records = [r for r in records if r[1]]
        self._rng.shuffle(records)
        records.sort(key=lambda r: r[0])  # stable: equal preferences stay shuffled
        hosts: list[MxHost] = []
        for preference, name in records:
            addresses = await self.addresses(name)
            if addresses:
                hosts.append(MxHost(name, preference, addresses))
        if not hosts:
            raise DeliveryError(0, f"no mail host of {domain} has an address", True, NO_ROUTE)
        return hosts

    async def addresses(self, host: str) -> tuple[str, ...]:
        """IPv4 then IPv6 addresses of `host`; empty when it has none or DNS fails."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(_absolute(host), rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                log.info("%s lookup for %s failed: %s", rdtype, host, exc)
                continue
            found += [r.to_text() for r in answer]
        return tuple(found)
