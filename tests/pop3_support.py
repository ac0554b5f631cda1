"""POP3 test helpers: a relay with an SMTP listener and the three POP3 listeners, users,
and mail sent over SMTP to read back."""

from __future__ import annotations

import dataclasses
import poplib
import smtplib
import types
from typing import Any

from relay import passwords
from relay.config import AuthConfig, Config, MailboxesConfig, MailboxRule, WebConfig
from tests.support import RunningRelay, listener, make_config, queue_id

PASSWORDS = {"alice": "alice's password", "bob": "bob's password", "root": "root's password"}
HASHES = {name: passwords.hash_password(pw) for name, pw in PASSWORDS.items()}

TOKEN = "a token for scripts"
LISTENERS = (
    listener("smtp", "smtp", auth="optional", allow_insecure_auth=True),
    listener("pop3", "pop3", allow_insecure_auth=True),
    listener("pop3-tls", "pop3"),
    listener("pop3s", "pop3s"),
)


def pop3_config(db_url: str, per_user: bool = False, **sections: Any) -> Config:
    """A relay config with SMTP (AUTH allowed in clear), POP3 listeners and three users."""
    auth = AuthConfig(users=types.MappingProxyType(HASHES), failure_delay=0.0)
    config = make_config(db_url, listener=LISTENERS, auth=auth)
    if per_user:
        rules = (MailboxRule(name="tenant-a", match=("*@tenant-a.test",)),)
        web = WebConfig(
            address="127.0.0.1:0",
            users=types.MappingProxyType(HASHES),
            admins=("root",),
            token=TOKEN,
        )
        config = dataclasses.replace(
            config, mailboxes=MailboxesConfig(mode="per-user"), mailbox=rules, web=web
        )
    return dataclasses.replace(config, **sections)


def send(
    relay: RunningRelay,
    raw: bytes,
    to: str = "someone@example.org",
    user: str | None = None,
) -> str:
    """Send `raw` over SMTP (as `user` when given); the stored id."""
    with smtplib.SMTP("127.0.0.1", relay.port("smtp"), timeout=10) as client:
        client.ehlo("client.example")
        if user is not None:
            client.login(user, PASSWORDS[user])
        client.mail("app@example.com")
        client.rcpt(to)
        code, reply = client.data(raw)
    assert code == 250, reply
    return queue_id(reply)


def message(subject: str, body: str = "Hello.") -> bytes:
    """A small message with CRLF line ends."""
    head = f"From: app@example.com\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
    return f"{head}\r\n{body}\r\n".encode()


def plain(relay: RunningRelay, user: str = "alice") -> poplib.POP3:
    """A poplib client logged in over plain POP3 (the allow_insecure_auth listener)."""
    client = poplib.POP3("127.0.0.1", relay.port("pop3"), timeout=10)
    client.user(user)
    client.pass_(PASSWORDS[user])
    return client


def retrieved(client: poplib.POP3, number: int) -> bytes:
    """Message `number` as poplib gives it back, lines joined with CRLF again."""
    _, lines, _ = client.retr(number)
    return b"\r\n".join(lines) + b"\r\n"
