"""Connections to one destination (an upstream, or one MX host), pooled and reused.

At most `max_connections` are open at once. aiosmtplib connects and sets a connection up
(EHLO, STARTTLS, AUTH); its transactions then go through a `Channel`. A connection that
finished a transaction waits idle for the next one (which sends RSET first, so that
whatever the last one left behind cannot leak into it) and is closed after `idle_timeout`,
after `max_messages_per_connection` messages, or when the server said 421 or broke it; a
reused connection that turns out closed is replaced by the sender, at no cost of an
attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from dataclasses import dataclass

import aiosmtplib

from relay.config import ConnectionSettings, TlsMode, tls_mode
from relay.delivery.channel import Channel
from relay.delivery.retry import TLSFailed, tls_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a pool connects: a host by name, the addresses to try (none: the name itself)."""

    key: str  # the pool's key: "upstream:NAME" or "mx:HOST"
    host: str
    port: int
    settings: ConnectionSettings
    addresses: tuple[str, ...] = ()
    username: str = ""
    password: str = ""

    @property
    def tls(self) -> TlsMode:
        """The TLS this destination is reached with ("auto" decided by the username)."""
        return tls_mode(self.settings.tls, self.username)

    @property
    def section(self) -> str:
        """The config table that sets this destination up: "[upstream.NAME]" or "[mx]"."""
        kind, _, name = self.key.partition(":")
        return f"[upstream.{name}]" if kind == "upstream" else "[mx]"

    def tls_failure(self, exc: BaseException) -> BaseException:
        """`exc` as a TLSFailed naming the keys to look at, when it is a TLS failure."""
        reason = tls_reason(exc)
        if reason is None:
            return exc
        keys = "ca_file or verify" if reason.startswith("certificate verify") else "tls"
        failure = TLSFailed(f"TLS failed: {reason} (see {self.section} {keys})")
        failure.__cause__ = exc
        return failure


class Connection:
    """One SMTP client connection of a pool."""

    def __init__(self, channel: Channel, label: str) -> None:
        self.channel = channel
        self.label = label  # shown on attempts: host[address]:port
        self.messages = 0
        self.reused = False  # carried a transaction before: the next one starts with RSET
        self.idle_timer: asyncio.TimerHandle | None = None


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext:
    """The client TLS context for `settings`: verifying (with `ca_file` if set) or not."""
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Pool:
    """The connections to one `Target`."""

    def __init__(self, target: Target, local_hostname: str) -> None:
        self.target = target
        self.local_hostname = local_hostname
        self.opened = 0  # connections opened so far, for logs and tests
        self._slots = asyncio.Semaphore(target.settings.max_connections)
        self._busy = 0  # connections handed out for a transaction and not yet given back
        self._idle: deque[Connection] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    @property
    def idle(self) -> int:
        """How many open connections wait for work."""
        return len(self._idle)

    @property
    def open(self) -> int:
        """Connections open now: in a transaction, or idle and kept for reuse."""
        return self._busy + len(self._idle)

    async def acquire(self) -> Connection:
        """A connection for a transaction: an idle one that is still open, else a new one.

        Waits while `max_connections` are in use. Raises what connecting raised.
        """
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if conn.idle_timer is not None:
                    conn.idle_timer.cancel()
                if not conn.channel.is_open or conn.channel.unasked:  # closed, or said 421
                    conn.channel.close()
                    continue
                conn.reused = True
                self._busy += 1
                return conn
            conn = await self._connect()
            self._busy += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection) -> None:
        """Give back a connection after a transaction: kept idle for reuse, or retired."""
        self._slots.release()
        self._busy -= 1
        settings = self.target.settings
        if (
            not self._closed
            and conn.channel.is_open
            and conn.messages < settings.max_messages_per_connection
        ):
            loop = asyncio.get_running_loop()
            conn.idle_timer = loop.call_later(settings.idle_timeout, self._expire, conn)
            self._idle.append(conn)
            return
        self._quit(conn)

    def discard(self, conn: Connection) -> None:
        """Give back a connection that broke or was interrupted: closed at once, no QUIT."""
        self._slots.release()
        self._busy -= 1
        conn.channel.close()

    def _expire(self, conn: Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            log.debug(
                "%s: closing a connection idle for %.0fs",
                conn.label,
                self.target.settings.idle_timeout,
            )
            self._quit(conn)

    def _quit(self, conn: Connection) -> None:
        """Say QUIT and close, in the background; a broken connection is just closed."""
        if not conn.channel.is_open:
            conn.channel.close()
            return
        task = asyncio.create_task(self._say_quit(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _say_quit(self, conn: Connection) -> None:
        await conn.channel.quit(min(5.0, self.target.settings.command_timeout))

    async def _connect(self) -> Connection:
        target = self.target
        settings = target.settings
        if target.tls != "none" and self._tls is None:
            self._tls = await asyncio.to_thread(tls_context, settings)
        last: BaseException | None = None
        for address in target.addresses or (target.host,):
            smtp = aiosmtplib.SMTP(
                hostname=address,
                port=target.port,
                local_hostname=self.local_hostname,
                timeout=settings.command_timeout,
                use_tls=target.tls == "implicit",
                start_tls=False,
                tls_context=self._tls,
            )
            label = f"{target.host}:{target.port}"
            if address != target.host:
                label = f"{target.host}[{address}]:{target.port}"
            try:
                await smtp.connect(timeout=settings.connect_timeout)
                await self._secure_and_login(smtp)
                channel = Channel.take_over(smtp)
            except (aiosmtplib.SMTPException, OSError) as exc:
                smtp.close()
                last = target.tls_failure(exc)
                log.info("%s: %s", label, last)
                continue
            self.opened += 1
            return Connection(channel, label)
        assert last is not None
        raise last

    async def _secure_and_login(self, smtp: aiosmtplib.SMTP) -> None:
        target = self.target
        timeout = target.settings.connect_timeout
        await smtp.ehlo(timeout=timeout)
        offered = smtp.supports_extension("starttls")
        if target.tls == "starttls" and not offered:
            raise TLSFailed(
                f"TLS failed: the server offers no STARTTLS, which {target.section} tls ="
                ' "starttls" requires'
                + ("" if target.username else ' (tls = "opportunistic" sends in plain text)')
            )
        if offered and target.tls in ("starttls", "opportunistic"):
            await smtp.starttls(server_hostname=target.host, tls_context=self._tls, timeout=timeout)
            await smtp.ehlo(timeout=timeout)
        if target.username:
            await smtp.login(target.username, target.password, timeout=timeout)

    async def close(self) -> None:
        """Close every idle connection (saying QUIT) and wait for the closes to finish."""
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
            self._quit(conn)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
