"""A real upstream for tests: an aiosmtpd server on loopback, in its own thread.

It records every connection and transaction, and can be scripted per recipient: each
`script(address, *answers)` answer is used by one attempt for that address, in order, then
the default (accept). An answer is a RCPT reply ("550 5.1.1 ..."; a 421 also closes the
connection), or something that happens at DATA: `data(reply)`, `DROP` (close without a
reply) or `SLOW` (hold the reply until `release()`). With `greeting` set, every new connection
is answered with that reply instead of 220 and closed. It offers PIPELINING, as most mail
servers do, unless told `pipelining=False`.

    with Upstream().start() as upstream:
        upstream.script("bob@example.com", RCPT_550)
        ...
        upstream.wait(lambda u: len(u.delivered) == 1)
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from relay.smtp.session import say_and_close

RCPT_OK = "250 2.1.5 OK"
DATA_OK = "250 2.0.0 OK: queued"
RCPT_421 = "421 4.3.2 Service shutting down, closing the connection"
RCPT_450 = "450 4.2.1 Mailbox busy, try again later"
RCPT_451 = "451 4.3.0 Local error, try again later"
RCPT_452 = "452 4.5.3 Too many recipients"
RCPT_550 = "550 5.1.1 No such user here"
RCPT_554 = "554 5.7.1 Relay access denied"
GREETING_421 = "421 4.3.2 upstream.test Service not available, closing transmission channel"
DROP = "drop"
SLOW = "slow"
DATA_PREFIX = "data:"


def data(reply: str) -> str:
    """An answer given to DATA instead of RCPT (e.g. `data(RCPT_451)`)."""
    return DATA_PREFIX + reply


@dataclass
class Connection:
    """One client connection as the upstream saw it."""

    id: int
    commands: list[str] = field(default_factory=list)
    tls: bool = False
    auth_user: str | None = None
    open: bool = True


@dataclass(frozen=True)
class Transaction:
    """One DATA the upstream answered: envelope, bytes, and its reply to DATA."""

    connection: int
    mail_from: str
    mail_options: tuple[str, ...]
    rcpt_tos: tuple[str, ...]
    data: bytes
    reply: str
    tls: bool
    auth_user: str | None


class _Session(SMTP):  # type: ignore[misc]
    """aiosmtpd's protocol, reporting connections and commands to the upstream."""

    def __init__(self, upstream: Upstream, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstream = upstream
        self.record = upstream._opened()
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        greeting = self.upstream._greeting()
        if greeting is not None:  # up, but refusing service: say so and hang up
            self.refused = True
            say_and_close(transport, greeting)
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return False if self.refused else super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.upstream._closed(self)
        if not self.refused:
            super().connection_lost(exc)

    async def smtp_RSET(self, arg: str) -> None:
        self.record.commands.append("RSET")
        await super().smtp_RSET(arg)

    async def smtp_QUIT(self, arg: str) -> None:
        self.record.commands.append("QUIT")
        await super().smtp_QUIT(arg)

    async def smtp_MAIL(self, arg: str) -> None:
        self.record.commands.append("MAIL")
        await super().smtp_MAIL(arg)


class _Handler:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def handle_EHLO(
        self,
        server: _Session,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.upstream.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self,
        server: _Session,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        answer = self.upstream._next_answer(address)
        if answer.startswith(DATA_PREFIX) or answer in (DROP, SLOW):
            plans = getattr(envelope, "plans", [])
            plans.append(answer)
            envelope.plans = plans
            answer = RCPT_OK
        if not answer.startswith("2"):
            if answer.startswith("421"):
                asyncio.get_running_loop().call_soon(server.transport.close)
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return answer

    async def handle_DATA(self, server: _Session, session: Session, envelope: Envelope) -> str:
        plans: list[str] = getattr(envelope, "plans", [])
        plan = plans[0] if plans else DATA_OK
        if plan == DROP:
            server.record.commands.append("DROPPED")
            server.transport.abort()
            await asyncio.sleep(0)
            return DATA_OK  # never reaches the client
        if plan == SLOW:
            await self.upstream._hold()
            plan = DATA_OK
        reply = plan.removeprefix(DATA_PREFIX)
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.upstream._transaction(server.record, envelope, session, reply, tls)
        return reply


class Upstream:
    """A scriptable SMTP server on 127.0.0.1; start(), stop() and start() again."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: Literal["none", "starttls", "implicit"] = "none",
        ssl_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        data_size_limit: int = 33554432,
        pipelining: bool = True,
    ) -> None:
        self.host = host
        self.pipelining = pipelining
        self.data_size_limit = data_size_limit
        self.port = port
        self.tls = tls
        self.ssl_context = ssl_context
        self.users = users
        self.connections: list[Connection] = []
        self.transactions: list[Transaction] = []
        self.open_now = 0
        self.most_open = 0
        self.holding = 0
        self.greeting: str | None = None
        """When set, new connections get this reply (e.g. GREETING_421) and are closed."""
        self.greetings_left: int | None = None
        """How many connections get `greeting` before service resumes (None: all)."""
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Session] = set()
        self._release: asyncio.Event | None = None

    # -- control, from the test's thread --------------------------------------------------

    def start(self) -> Upstream:
        """Listen (on the same port as before after a stop); return when bound."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Upstream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, address: str, *answers: str) -> None:
        """Answers for the next attempts to deliver to `address`, one per attempt."""
        with self._lock:
            self._scripts[address.lower()].extend(answers)

    def release(self) -> None:
        """Let every SLOW answer (held or to come) reply."""
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def wait(self, predicate: Callable[[Upstream], bool], within: float = 20) -> None:
        """Block until `predicate(self)` holds (checked at every change); fail after `within`."""
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(self), within):
                raise AssertionError(f"upstream never reached the expected state: {self!r}")

    async def until(self, predicate: Callable[[Upstream], bool], within: float = 20) -> None:
        """`wait`, without blocking the caller's event loop."""
        await asyncio.to_thread(self.wait, predicate, within)

    @property
    def delivered(self) -> list[Transaction]:
        """Transactions answered with 2xx."""
        with self._lock:
            return [t for t in self.transactions if t.reply.startswith("2")]

    def delivered_to(self, address: str) -> int:
        """How many accepted transactions carried `address`."""
        return sum(address in t.rcpt_tos for t in self.delivered)

    def __repr__(self) -> str:
        return (
            f"<Upstream {self.host}:{self.port} connections={len(self.connections)}"
            f" open={self.open_now} transactions={[t.reply for t in self.transactions]}"
            f" holding={self.holding}>"
        )

    # -- the server side, on the upstream's loop ----------------------------------------

    def _factory(self) -> _Session:
        session = _Session(
            self,
            _Handler(self),
            hostname="upstream.test",
            ident="test upstream",
            decode_data=False,
            data_size_limit=self.data_size_limit,
            enable_SMTPUTF8=True,
            tls_context=self.ssl_context if self.tls == "starttls" else None,
            require_starttls=self.tls == "starttls",
            authenticator=self._authenticate if self.users is not None else None,
            auth_required=self.users is not None,
            loop=self._loop,
        )
        if self.tls == "implicit":
            # aiosmtpd does not notice implicit TLS by itself (and warns when told not to
            # require TLS for AUTH): the channel is encrypted, so AUTH may go ahead.
            session._auth_require_tls = False
        self._sessions.add(session)
        return session

    async def _serve(self) -> None:
        assert self._loop is not None
        self._release = asyncio.Event()
        self._server = await self._loop.create_server(
            self._factory,
            self.host,
            self.port,
            ssl=self.ssl_context if self.tls == "implicit" else None,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None and self._release is not None
        self._server.close()
        self._release.set()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.abort()
        await self._server.wait_closed()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: Any
    ) -> AuthResult:
        assert self.users is not None
        if not isinstance(auth, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth.login.decode(), auth.password.decode()
        ok = self.users.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def _opened(self) -> Connection:
        with self._lock:
            record = Connection(len(self.connections) + 1)
            self.connections.append(record)
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            self._lock.notify_all()
            return record

    def _closed(self, session: _Session) -> None:
        record = session.record
        with self._lock:
            self._sessions.discard(session)
            if record.open:
                record.open = False
                self.open_now -= 1
            self._lock.notify_all()

    def _greeting(self) -> str | None:
        with self._lock:
            if self.greeting is None or self.greetings_left == 0:
                return None
            if self.greetings_left is not None:
                self.greetings_left -= 1
            return self.greeting

    def _next_answer(self, address: str) -> str:
        with self._lock:
            answers = self._scripts.get(address.lower())
            return answers.popleft() if answers else RCPT_OK

    async def _hold(self) -> None:
        assert self._release is not None
        with self._lock:
            self.holding += 1
            self._lock.notify_all()
        try:
            await self._release.wait()
        finally:
            with self._lock:
                self.holding -= 1
                self._lock.notify_all()

    def _transaction(
        self, record: Connection, envelope: Envelope, session: Session, reply: str, tls: bool
    ) -> None:
        content = envelope.original_content or b""
        with self._lock:
            record.tls = tls
            record.auth_user = session.auth_data if session.authenticated else None
            self.transactions.append(
                Transaction(
                    connection=record.id,
                    mail_from="" if envelope.mail_from in (None, "<>") else envelope.mail_from,
                    mail_options=tuple(envelope.mail_options),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=content,
                    reply=reply,
                    tls=record.tls,
                    auth_user=record.auth_user,
                )
            )
            self._lock.notify_all()
