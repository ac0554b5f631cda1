"""Sending one envelope to one destination: which hosts, which pool, what came back.

A destination (relay.routing.Destination) names an `[upstream.NAME]`, or the MX hosts of
a domain, tried in preference order (the next host when one cannot be reached). A pooled connection
that turns out broken, or closing (421 to every recipient: the server timed it out while
it was idle), is dropped and the envelope sent again on a fresh one: that try does not
count as an attempt.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiosmtplib

from relay.config import Config, ConnectionSettings
from relay.config.limits import DestinationLimits
from relay.delivery import retry, transaction
from relay.delivery.mx import MxResolver
from relay.delivery.pool import Pool, Target
from relay.delivery.retry import Reply
from relay.delivery.transaction import Envelope
from relay.errors import DeliveryError
from relay.routing import Destination

log = logging.getLogger(__name__)

UNKNOWN_ROUTE = "4.3.5"  # system incorrectly configured
SERVICE_CLOSING = 421


@dataclass(frozen=True)
class Sent:
    """The outcome of sending one envelope: the host that answered and a reply per recipient."""

    host: str
    replies: list[Reply]


class Sender:
    """Pools per destination, shared by every delivery of one process."""

    def __init__(self, config: Config, resolver: MxResolver | None = None) -> None:
        self.config = config
        self.resolver = resolver or MxResolver()
        self.local_hostname = config.server.host_name
        self.pools: dict[str, Pool] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def settings(self, destination: Destination) -> ConnectionSettings:
        """The connection settings of a destination (MX, an upstream, else defaults)."""
        if destination.is_mx:
            return self.config.mx
        upstream = self.config.upstream.get(destination.upstream)
        return upstream if upstream is not None else ConnectionSettings()

    def limits(self, destination: Destination) -> DestinationLimits:
        """The rate limit and breaker of a destination (an MX domain's, an upstream's)."""
        if destination.is_mx:
            return self.config.mx.limits_for(destination.domain or "")
        upstream = self.config.upstream.get(destination.upstream)
        return upstream if upstream is not None else DestinationLimits()

    async def _targets(self, destination: Destination) -> list[Target]:
        if destination.is_mx:
            mx = self.config.mx
            hosts = await self.resolver.hosts(destination.domain or "")
            return [Target(f"mx:{h.name}", h.name, mx.port, mx, h.addresses) for h in hosts]
        name = destination.upstream
        upstream = self.config.upstream.get(name)
        if not destination.relays or upstream is None:
            text = f"route {destination.route!r} names no [upstream] in the configuration"
            raise DeliveryError(0, text, True, UNKNOWN_ROUTE)
        target = Target(
            f"upstream:{name}",
            upstream.host,
            upstream.port,
            upstream,
            username=upstream.username,
            password=upstream.password,
        )
        return [target]

    def _pool(self, target: Target) -> Pool:
        pool = self.pools.get(target.key)
        if pool is not None and pool.target != target:  # the host's addresses changed
            stale = asyncio.create_task(pool.close())
            self._closing.add(stale)
            stale.add_done_callback(self._closing.discard)
            pool = None
        if pool is None:
            pool = self.pools[target.key] = Pool(target, self.local_hostname)
        return pool

    async def send(self, destination: Destination, envelope: Envelope) -> Sent:
        """Send `envelope` to `destination`; every failure becomes replies, nothing raises."""
        count = len(envelope.recipients)
        try:
            targets = await self._targets(destination)
        except DeliveryError as exc:
            return Sent("", [retry.from_exception(exc)] * count)
        failure: Reply | None = None
        for target in targets:
            pool = self._pool(target)
            try:
                return await self._over(pool, envelope)
            except (aiosmtplib.SMTPException, OSError) as exc:
                # Could not get a usable connection to this host: try the next one.
                failure = retry.from_exception(exc)
        assert failure is not None
        last = targets[-1]
        return Sent(f"{last.host}:{last.port}", [failure] * count)

    async def _over(self, pool: Pool, envelope: Envelope) -> Sent:
        """Send over a pooled connection; a reused one that is broken or closing is replaced,
        for free."""
        while True:
            conn = await pool.acquire()
            try:
                replies = await transaction.transact(
                    conn.channel,
                    envelope,
                    reset=conn.reused,
                    command_timeout=pool.target.settings.command_timeout,
                )
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                pool.discard(conn)
                if conn.reused:
                    log.info(
                        "%s: reused connection broke (%s); sending on a new one", conn.label, exc
                    )
                    continue
                return Sent(conn.label, [retry.from_exception(exc)] * len(envelope.recipients))
            except (aiosmtplib.SMTPException, OSError) as exc:
                pool.discard(conn)
                return Sent(conn.label, [retry.from_exception(exc)] * len(envelope.recipients))
            except BaseException:
                pool.discard(conn)
                raise
            if conn.reused and all(r.code == SERVICE_CLOSING for r in replies):
                pool.discard(conn)
                log.info("%s: reused connection is closing (421); sending on a new one", conn.label)
                continue
            conn.messages += 1
            pool.release(conn)
            return Sent(conn.label, replies)

    def open_connections(self) -> dict[str, int]:
        """Connections open now, by destination (the pool's key)."""
        return {key: pool.open for key, pool in self.pools.items()}

    async def close(self) -> None:
        """Close every pool's idle connections."""
        await asyncio.gather(*(pool.close() for pool in self.pools.values()), *self._closing)
