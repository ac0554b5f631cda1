"""Test helpers: a real relay on free loopback ports, run on its own loop in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import smtplib
import socket
import ssl
import threading
import types
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from relay import passwords
from relay.app import Relay
from relay.cli.serve import loop_factory
from relay.config import AuthConfig, Config, ListenerConfig, StorageConfig, WebConfig

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(db_url: str, **sections: Any) -> Config:
    """A Config on ephemeral loopback ports storing in `db_url`; `sections` replace parts."""
    config = Config(
        listener=(ListenerConfig(address="127.0.0.1:0"),),
        web=WebConfig(address="127.0.0.1:0"),
        storage=StorageConfig(url=db_url),
        source="test",
    )
    return dataclasses.replace(config, **sections)


USER = "alice"
PASSWORD = "correct horse battery staple"
USER_HASH = passwords.hash_password(PASSWORD)


def users(failure_delay: float = 0.0) -> AuthConfig:
    """[auth] with the one test user (USER / PASSWORD) and no pause after failures."""
    return AuthConfig(
        users=types.MappingProxyType({USER: USER_HASH}),
        failure_delay=failure_delay,
        max_failure_delay=max(failure_delay, 30.0),
    )


def listener(name: str, kind: str = "smtp", **settings: Any) -> ListenerConfig:
    """A [[listener]] on a free loopback port."""
    return ListenerConfig(name=name, address="127.0.0.1:0", kind=kind, **settings)  # type: ignore[arg-type]


def smtplib_form(reply: str) -> tuple[int, bytes]:
    """A reply constant as smtplib hands it back: (code, text after the code)."""
    code, _, text = reply.partition(" ")
    return int(code), text.encode()


def queue_id(reply: bytes) -> str:
    """The queue id in a 250 reply to DATA."""
    match = re.search(rb"queued as (\w+)", reply)
    assert match, reply
    return match.group(1).decode()


class RunningRelay:
    """A `Relay` serving in a background thread; `call` runs a coroutine on its loop,
    the loop `relay serve` would use for this config (uvloop when installed)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = (loop_factory(config.server.event_loop) or asyncio.new_event_loop)()
        self.relay = Relay.__new__(Relay)  # built on the loop, in start()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> RunningRelay:
        """Start the loop thread and the relay; return once everything listens."""
        self._thread.start()

        async def build() -> Relay:
            relay = Relay(self.config)
            await relay.start()
            return relay

        self.relay = self.call(build())
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coro` on the relay's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def smtp_port(self) -> int:
        """Port of the first listener."""
        return self.relay.listeners[0].bound[1]

    def port(self, name: str) -> int:
        """Port of the listener called `name`."""
        for item in [*self.relay.listeners, *self.relay.pop3]:
            if item.config.name == name:
                return item.bound[1]
        raise KeyError(name)

    @property
    def dev_cert(self) -> Path:
        """The development certificate beside the SQLite database."""
        database = Path(self.config.storage.url.split("///", 1)[1])
        return database.parent / "relay-tls" / "cert.pem"

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts (only) the development certificate."""
        return ssl.create_default_context(cafile=str(self.dev_cert))

    @property
    def web_url(self) -> str:
        """Base URL of the web UI."""
        host, port = self.relay.web_address
        return f"http://{host}:{port}"

    def smtp(self, name: str | None = None) -> smtplib.SMTP:
        """A connected smtplib client (to the first listener, or the one called `name`)."""
        port = self.smtp_port if name is None else self.port(name)
        return smtplib.SMTP("127.0.0.1", port, timeout=10)

    def message(self, message_id: str) -> Any:
        """The stored summary row of a message."""
        return self.call(self.relay.store.messages.get(message_id))

    def raw(self, message_id: str) -> bytes:
        """The stored raw bytes of a message."""
        raw = self.call(self.relay.store.messages.raw(message_id))
        assert raw is not None
        return raw

    def count(self) -> int:
        """How many messages are stored."""
        page = self.call(self.relay.store.messages.page(0, 1))
        return int(page.total)

    def stop(self) -> None:
        """Stop the relay, then the loop and its thread."""
        try:
            self.call(self.relay.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
