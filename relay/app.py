"""Composition root: builds the store, the delivery worker, the SMTP listeners and the web
app on one loop, starts them in order, and stops them cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from relay import routing
from relay.chaos import Chaos
from relay.config import ROLES, Config, ListenerConfig, resolved
from relay.delivery.worker import Worker
from relay.errors import StartupError, cannot_listen
from relay.housekeeping import Retention
from relay.logins import Authenticator
from relay.metrics import Metrics
from relay.pop3.server import Pop3Listener
from relay.processes import Helpers, PrimaryLink
from relay.smtp.chaos import StageChaos
from relay.smtp.handler import Handler
from relay.smtp.listener import Listener
from relay.smtp.tls import listener_contexts
from relay.store import Store

if TYPE_CHECKING:
    from relay.events.worker import EventSender

log = logging.getLogger(__name__)


class _WebServer(uvicorn.Server):
    """uvicorn's server, leaving signal handling to `Relay`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int, what: str, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(what, f"{host}:{port}", exc) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Relay:
    """One relay process: SMTP listeners, store, delivery worker (with retention) and web UI
    sharing one event loop; `[server] roles` says which of them run here."""

    def __init__(
        self, config: Config, helper_command: list[str] | None = None, helper: bool = False
    ) -> None:
        """`helper_command` starts an SMTP helper process (`[server] smtp_processes`; the
        helper's number is appended); `helper` makes this process one (relay.processes)."""
        config = resolved(config)
        self.config = config
        self.roles = frozenset(config.server.roles)
        self.store = Store(config.storage)
        self.store.configure(config.webhook, config.suppression)
        self.metrics = Metrics()
        self.metrics.watch_webhooks(hook.url for hook in config.webhook)
        self.store.outbox.raised = self.metrics.events_raised
        # Off: no Chaos at all, and every stage's check for it is all it costs.
        self.chaos = Chaos(config.chaos) if config.chaos.enabled else None
        if self.chaos is not None:
            self.metrics.watch_chaos(self.chaos.hits)
        authenticator = Authenticator(config.auth)
        # With `smtp_in_primary = false` the helpers accept all SMTP, this process none.
        accepts = "smtp" in self.roles and (
            config.server.smtp_in_primary or config.server.smtp_processes == 1
        )
        smtp = [lc for lc in config.listener if not lc.is_pop3 and accepts]
        self.listeners = [self._listener(lc, authenticator) for lc in smtp]
        # POP3 reads mailboxes: its listeners run in the primary process only.
        reads = "smtp" in self.roles and not helper
        pop3 = [lc for lc in config.listener if lc.is_pop3 and reads]
        self.pop3 = [
            Pop3Listener(lc, config, self.store, authenticator, self.metrics) for lc in pop3
        ]
        for listener in self.listeners:
            self.metrics.watch_sessions(listener.config.name, listener.sessions.__len__)
        self.retention, self.worker, self.events = self._delivery(config)
        self.helpers: Helpers | None = None
        wanted = config.server.smtp_processes - 1
        if helper_command is not None and wanted > 0 and "smtp" in self.roles:
            # What a helper stores counts as ingest here: the search indexer waits for it.
            # The bytes of mail to relay come along, so the worker need not read them back.
            self.helpers = Helpers(
                helper_command,
                wanted,
                self.store.events,
                on_message=self.store.committer.touch,
                on_raw=self.store.fresh.put,
            )
        self.link: PrimaryLink | None = None
        if helper:
            forward = self.store.db.is_sqlite  # PostgreSQL's NOTIFY tells the primary
            self.link = PrimaryLink(
                self.store.events, forward, self.request_stop, take_raw=self.store.fresh.take
            )
        # Several processes commit to one SQLite file: let them take turns at once.
        self.store.db.take_turns = self.helpers is not None or helper
        self._web: _WebServer | None = None
        self._web_task: asyncio.Task[None] | None = None
        self._web_socket: socket.socket | None = None
        self._stopping = asyncio.Event()
        self._starting: asyncio.Future[None] | None = None

    def _delivery(
        self, config: Config
    ) -> tuple[Retention | None, Worker | None, EventSender | None]:
        """With the delivery role: the worker, retention (housekeeping of the queue) and the
        webhooks' sender (any process may write their events; this one sends them)."""
        if "delivery" not in self.roles:
            return None, None, None
        expiring = config.suppression.ttl_seconds > 0
        retention = Retention(config.storage, self.store, self.metrics, expiring=expiring)
        worker = Worker(config, self.store, metrics=self.metrics, chaos=self.chaos)
        self.metrics.watch_connections(worker.sender.open_connections)
        events = None
        if config.webhook:  # the sender and httpx, only when there are webhooks
            from relay.events.worker import EventSender

            events = EventSender(config.webhook, self.store, metrics=self.metrics)
        return retention, worker, events

    def _listener(self, lc: ListenerConfig, authenticator: Authenticator) -> Listener:
        """The listener of `lc`, with its handler (and its chaos, when on)."""
        chaos = StageChaos(self.chaos, lc.name) if self.chaos is not None else None
        handler = Handler(self.config, lc, self.store, chaos)
        return Listener(lc, self.config.server, handler, authenticator, self.metrics, chaos)

    @property
    def web_address(self) -> tuple[str, int]:
        """The address the web UI is bound to."""
        assert self._web_socket is not None
        host, port = self._web_socket.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Open the store, then start this process's roles; log what serves where."""
        try:
            await self.store.open()
            if self.roles & {"web", "delivery"}:
                await self.store.listen()  # other processes' changes (PostgreSQL)
            if self.worker is not None:
                await self.worker.start()
            if self.events is not None:
                await self.events.start()
            if self.link is not None:
                await self.link.start()
            if self.listeners or self.pop3:
                await self._start_listeners()
            if self.helpers is not None:
                await self.helpers.start()
                pids = ", ".join(map(str, self.helpers.pids))
                if self.listeners:
                    log.info(
                        "smtp: %d processes share the listeners' ports (helpers: pid %s)",
                        len(self.helpers.pids) + 1,
                        pids,
                    )
                else:
                    log.info(
                        "smtp: helpers (pid %s) take the listeners' ports; this one accepts"
                        " none (smtp_in_primary = false)",
                        pids,
                    )
            if "web" in self.roles:  # last: when it answers, every process accepts mail
                await self._start_web()
        except BaseException:
            await self.stop()
            raise
        if self.link is not None:
            self.link.ready()
        storage = self.config.storage
        if self.store.indexer is not None and "web" in self.roles:
            self.store.indexer.start()  # search index (SQLite), filled while ingest is idle
        if self.retention is not None:
            self.retention.start()
            if storage.retention:
                log.info(
                    "retention: at most %s messages, none older than %s (queued mail is kept)",
                    storage.max_messages or "any number of",
                    storage.max_age or "any age",
                )
        db = self.store.db
        detail = (
            f"SQLite, WAL, synchronous={self.config.storage.sqlite_synchronous}"
            if db.is_sqlite
            else "MySQL/MariaDB, change_log polled"
            if db.is_mysql
            else "PostgreSQL"
        )
        log.info("database %s (%s)", db.display_url, detail)
        if self.roles != set(ROLES):
            log.info("roles: %s", ", ".join(r for r in ROLES if r in self.roles))
        log.info("mode %s: %s", self.config.mode, routing.describe(self.config.route))

    async def _start_listeners(self) -> None:
        contexts = await listener_contexts(self.config)
        for listener in self.listeners:
            await listener.start(contexts.get(listener.config.name))
            host, port = listener.bound
            lc = listener.config
            log.info(
                "smtp listener %r (%s) on %s:%d: STARTTLS %s, AUTH %s",
                lc.name,
                lc.kind,
                host,
                port,
                "n/a (implicit TLS)" if lc.implicit_tls else lc.starttls,
                lc.auth,
            )
        for pop3 in self.pop3:
            await pop3.start(contexts.get(pop3.config.name))
            host, port = pop3.bound
            lc = pop3.config
            log.info(
                "pop3 listener %r (%s) on %s:%d: %s, insecure logins %s",
                lc.name,
                lc.kind,
                host,
                port,
                "implicit TLS" if lc.implicit_tls else f"STLS {lc.starttls}",
                "allowed" if lc.allow_insecure_auth else "refused",
            )

    async def _start_web(self) -> None:
        from web import create_app  # the only import of the web package from relay/

        web = self.config.web
        self._web_socket = _bind(web.host, web.port, "web UI", web.reuse_port)
        app = create_app(self.config, self.store, self.metrics, self.problems, self.chaos)
        self._web = _WebServer(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._web_task = asyncio.create_task(self._web.serve(sockets=[self._web_socket]))
        while not self._web.started:
            if self._web_task.done():
                self._web_task.result()
                raise StartupError("web UI stopped during start-up")
            await asyncio.sleep(0.01)
        host, port = self.web_address
        log.info("web UI on http://%s:%d/", host, port)

    async def stop(self) -> None:
        """Stop accepting and drain SMTP sessions while deliveries in flight finish or give
        their leases back; stop the web UI; close the database."""
        timeout = self.config.server.shutdown_timeout
        await asyncio.gather(
            *([self.helpers.stop(timeout)] if self.helpers is not None else []),
            *([self.retention.stop()] if self.retention is not None else []),
            *([self.store.indexer.stop()] if self.store.indexer is not None else []),
            *(listener.stop(timeout) for listener in self.listeners),
            *(pop3.stop(timeout) for pop3 in self.pop3),
            *([self.worker.stop(timeout)] if self.worker is not None else []),
            *([self.events.stop()] if self.events is not None else []),
        )
        self.store.events.close()  # ends the web UI's event streams, so that it can stop
        if self._web is not None and self._web_task is not None:
            self._web.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._web_task, timeout + 1)
        if self._web_socket is not None:
            self._web_socket.close()
        if self.link is not None:
            await self.link.stop()
        await self.store.close()
        log.info("stopped")

    async def problems(self) -> list[str]:
        """What keeps this relay from being ready to take mail (empty: ready)."""
        found = []
        try:
            await self.store.db.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said as is
            found.append(f"database unreachable: {exc}")
        serving = [(lr.config.name, lr.serving) for lr in self.listeners]
        serving += [(pop3.config.name, pop3.serving) for pop3 in self.pop3]
        for name, up in serving:
            if not up:
                found.append(f"listener {name!r} is not accepting connections")
        return found

    def request_stop(self) -> None:
        """Ask `run` to stop (safe from a signal handler); during start-up, cancel it."""
        self._stopping.set()
        if self._starting is not None:
            self._starting.cancel()

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT (or `request_stop`), then stop cleanly."""
        loop = asyncio.get_running_loop()
        # Before starting: a signal during start-up (which with helpers takes a second or
        # two) cancels it (`request_stop`), and what had started is stopped cleanly.
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self._starting = asyncio.ensure_future(self.start())
        try:
            await self._starting
        except asyncio.CancelledError:
            if self._stopping.is_set():
                return  # `request_stop` cancelled start-up; start() stopped what it had begun
            raise
        finally:
            self._starting = None
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s: stopping", sig.name)
        self.request_stop()
