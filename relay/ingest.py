"""The one door into the store for new mail: route each recipient, add our Received
header (RFC 5321 §4.4), summarise, commit. SMTP DATA, the HTTP send API and the delivery
worker's bounces (DSN) all come in here; nothing here knows SMTP sessions or HTTP
requests (smtp → ingest → store, never back up).
"""

from __future__ import annotations

import email.utils
import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from relay import address, ids, mailboxes, routing, tagging
from relay.config import Config
from relay.errors import RelayError
from relay.mime import summary
from relay.mime.headers import clean
from relay.mime.summary import TEXT_LIMIT, Summary
from relay.offload import INGEST
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store
from relay.store.rawzip import Stored, pack
from relay.store.search import search_text

_UNSAFE = re.compile(r"[^\x21-\x7e]")
_last_date: tuple[int, str] = (-1, "")


def _date(when: float) -> str:
    """RFC 5322 local date of `when`; made once per second (formatting is slow, and under
    load thousands of messages share a second)."""
    global _last_date
    second = int(when)
    cached = _last_date
    if cached[0] != second:
        cached = _last_date = (second, email.utils.formatdate(second, localtime=True))
    return cached[1]


def protocol(extended: bool, tls: bool, authenticated: bool, utf8: bool) -> str:
    """The `with` keyword of RFC 3848 / RFC 6531: SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS…"""
    if not extended:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    helo: str,
    peer_ip: str,
    hostname: str,
    message_id: str,
    with_protocol: str,
    recipient: str | None,
    when: float | None = None,
) -> bytes:
    """The header as bytes, folded, ending in CRLF; client-given text is made safe."""
    helo_text = _UNSAFE.sub("", helo)[:255] or "unknown"
    date = _date(time.time() if when is None else when)
    lines = [
        f"Received: from {helo_text} ([{peer_ip}])",
        f"\tby {hostname} (relay) with {with_protocol} id {message_id}",
    ]
    if recipient is not None:
        safe = _UNSAFE.sub("", recipient)[:320]
        lines.append(f"\tfor <{safe}>;")
    else:
        lines[-1] += ";"
    lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="replace")


@dataclass(frozen=True)
class Origin:
    """Where a message came from, as recorded on it and in its Received header."""

    listener: str
    peer: str
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    protocol: str = "ESMTP"
    may_relay: bool = False
    """Whether recipients whose route relays them may be accepted from this origin."""
    owns_mail: bool = True
    """Whether `auth_user` is a person whose mailbox (in per-user mode) takes the message;
    not the web's bearer token, which logs in as "token" but is no user."""


class Refused(RelayError):
    """Some recipients may not be accepted; `addresses` maps each to the reason."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        detail = "; ".join(f"{a}: {why}" for a, why in addresses.items())
        super().__init__(f"recipients refused: {detail}")


REJECTED = "rejected by a route"
RELAY_DENIED = "relaying needs an authenticated or trusted client"


def _new_recipient(rcpt: str, decision: routing.Decision) -> NewRecipient:
    """A recipient as stored: queued when its route relays it, else captured."""
    status = Status.QUEUED if decision.action == "relay" else Status.CAPTURED
    return NewRecipient(rcpt, decision.label, status)


def route_recipients(
    recipients: Sequence[str], config: Config, may_relay: bool
) -> list[NewRecipient]:
    """Each recipient (duplicates dropped) with its route: queued to relay, else captured.

    Raises Refused naming every recipient a route rejects, or that would be relayed for
    an origin that may not relay.
    """
    routed: list[NewRecipient] = []
    refused: dict[str, str] = {}
    for rcpt in address.dedupe(list(recipients)):
        decision = routing.route(rcpt, config.route)
        if decision.action == "reject":
            refused[rcpt] = REJECTED
        elif decision.action == "relay" and not may_relay:
            refused[rcpt] = RELAY_DENIED
        else:
            routed.append(_new_recipient(rcpt, decision))
    if refused:
        raise Refused(refused)
    return routed


def tags_for(config: Config, fields: Summary, arrival: tagging.Arrival) -> tuple[str, ...]:
    """The tags a new message gets (relay.tagging): X-Tags, plus addresses, [[tag]] rules."""
    recipients = [rcpt for rcpt, _status in arrival.recipients]
    text = functools.partial(
        search_text,
        fields.subject,
        [fields.from_, fields.to, fields.cc, arrival.mail_from, *recipients],
        fields.text,
        TEXT_LIMIT,
    )
    return tagging.tags_of(config.tags, config.tag, fields, arrival, text)


async def submit(
    store: Store,
    config: Config,
    mail_from: str,
    recipients: Sequence[str],
    content: bytes,
    origin: Origin,
) -> str:
    """Store `content` for `recipients` durably and return its id (raises Refused first)."""
    if not recipients:
        raise Refused({"(none)": "a message needs at least one recipient"})
    routed = route_recipients(recipients, config, origin.may_relay)
    message_id = ids.new_id()
    now = time.time()
    header = received_header(
        helo=origin.helo or origin.peer,
        peer_ip=origin.peer,
        hostname=config.server.host_name,
        message_id=message_id,
        with_protocol=origin.protocol,
        recipient=routed[0].address if len(routed) == 1 else None,
        when=now,
    )
    raw = header + content
    del content  # a large message is held once, not twice, while it is parsed and stored
    fields, stored = await INGEST.run(len(raw), _read, raw)  # never raises
    owner = origin.auth_user if origin.owns_mail else None
    mailbox = mailboxes.mailbox_for(config, owner, [r.address for r in routed])
    tags: tuple[str, ...] = ()
    if tagging.wanted(config.tags, config.tag, fields):
        rcpts = [(r.address, r.status.value) for r in routed]
        arrival = tagging.Arrival(
            mail_from, rcpts, len(raw), origin.listener, origin.auth_user, now, mailbox
        )
        tags = tags_for(config, fields, arrival)
    await store.add_message(
        NewMessage(
            id=message_id,
            received_at=now,
            mail_from=mail_from,
            recipients=routed,
            raw=raw,
            summary=fields,
            listener=origin.listener,
            peer=origin.peer,
            helo=clean(origin.helo),
            auth_user=origin.auth_user,
            tls=origin.tls,
            tags=tags,
            mailbox=mailbox,
            stored=stored,
        )
    )
    return message_id


def _read(raw: bytes) -> tuple[Summary, Stored]:
    """A new message's summary and its bytes as stored (compressed): both read the whole
    message, so both run where the summary does (a thread, for large mail)."""
    return summary.summarize(raw), pack(raw)


DSN_LISTENER = "dsn"
"""The listener a bounce is recorded as coming in on."""


async def bounce(store: Store, config: Config, sender: str, data: bytes, now: float) -> str | None:
    """Store the delivery status notification `data` to `sender` (from the null sender),
    routed like any mail: relayed or captured. Its id, or None when the sender's route
    rejects it."""
    decision = routing.route(sender, config.route)
    if decision.action == "reject":
        return None
    rcpt = _new_recipient(sender, decision)
    fields = await INGEST.run(len(data), summary.full, data)
    mailbox = mailboxes.mailbox_for(config, None, [sender])
    arrival = tagging.Arrival(
        "", [(sender, rcpt.status.value)], len(data), DSN_LISTENER, None, now, mailbox
    )
    new = NewMessage(
        id=ids.new_id(now),
        received_at=now,
        mail_from="",
        recipients=[rcpt],
        raw=data,
        summary=fields,
        listener=DSN_LISTENER,
        peer="127.0.0.1",
        helo=config.server.host_name,
        tags=tags_for(config, fields, arrival),
        mailbox=mailbox,
    )
    await store.add_message(new)
    return new.id
