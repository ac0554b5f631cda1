"""Helpers for web tests: a store with messages in it, and the app in-process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from relay import ids, mime
from relay.config import Config, StorageConfig, WebConfig
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store
from web import create_app

BASE = "http://relay.test"


def message(
    subject: str = "Hello",
    body: str = "Hello there.",
    sender: str = "Alice <alice@example.com>",
    to: str = "bob@example.org",
    extra: str = "",
) -> bytes:
    """A small plain-text message."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


async def add(
    store: Store,
    raw: bytes,
    rcpts: dict[str, Status] | None = None,
    listener: str = "smtp",
    user: str | None = None,
    mail_from: str = "sender@example.com",
    received_at: float | None = None,
) -> str:
    """Store `raw` as the SMTP handler would (received now, or at `received_at`); its id."""
    message_id = ids.new_id()
    recipients = [
        NewRecipient(address=a, route="capture" if s is Status.CAPTURED else "relay:up", status=s)
        for a, s in (rcpts or {"bob@example.org": Status.CAPTURED}).items()
    ]
    await store.add_message(
        NewMessage(
            id=message_id,
            received_at=time.time() if received_at is None else received_at,
            mail_from=mail_from,
            recipients=recipients,
            raw=raw,
            summary=mime.summary.full(raw),
            listener=listener,
            peer="127.0.0.1",
            auth_user=user,
        )
    )
    return message_id


@asynccontextmanager
async def web_client(
    store: Store, web: WebConfig | None = None, **sections: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the web app in-process; `sections` add to the Config."""
    config = Config(
        web=web or WebConfig(),
        storage=StorageConfig(url=store.db.url.render_as_string(hide_password=False)),
        **sections,
    )
    app = create_app(config, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def csrf_token(client: httpx.AsyncClient) -> str:
    """Load the list once: the cookie is set and the token is in its forms."""
    response = await client.get("/")
    token = client.cookies.get("relay_csrf")
    assert token, response.headers
    return str(token)
