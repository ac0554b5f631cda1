"""A realistic queue for screenshots: failures and retries across upstreams and MX domains,
written straight into the store as a busy relay's delivery worker would have left them."""

from __future__ import annotations

import time
import types

from sqlalchemy import insert, update

from relay import ids, mime
from relay.config import UpstreamConfig
from relay.config.limits import DestinationLimits
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store
from relay.store.destinations import Outcome
from relay.store.schema import attempt, recipient

UPSTREAMS = types.MappingProxyType(
    {"smarthost": UpstreamConfig(host="smtp.ourcompany.example", port=587, tls="starttls")}
)

# (route, status, code, enhanced, text, minutes ago received, minutes to the next try)
UNKNOWN = (550, "5.1.1", "Recipient address rejected: User unknown in virtual mailbox table")
GREYLISTED = (451, "4.7.1", "Greylisted, please try again in 300 seconds")
RATE = (421, "4.7.0", "Try again later, closing connection (rate limit for 203.0.113.9)")
TIMEOUT = (None, "4.4.1", "connection timed out after 30 s")
FULL = (452, "4.2.2", "Mailbox full, try again later")
DENIED = (554, "5.7.1", "Relay access denied")

QUEUE = [
    ("Your receipt from Acme #4821", "billing@acme.example", [
        ("relay:smarthost", "jane.doe@oldcompany.example", Status.FAILED, UNKNOWN, 190, None),
        ("relay:smarthost", "j.smith@oldcompany.example", Status.FAILED, UNKNOWN, 190, None),
    ]),
    ("Reset your password", "no-reply@acme.example", [
        ("relay:smarthost", "ops-oncall@oldcompany.example", Status.FAILED, UNKNOWN, 42, None),
        ("relay:smarthost", "sam@greylist.example", Status.DEFERRED, GREYLISTED, 12, 4),
        ("relay:smarthost", "kim@greylist.example", Status.DEFERRED, GREYLISTED, 12, 4),
    ]),
    ("Weekly digest: 5 new posts", "digest@news.example", [
        ("relay:mx", "alex@mail.bigisp.example", Status.DEFERRED, RATE, 95, 18),
        ("relay:mx", "robin@mail.bigisp.example", Status.DEFERRED, RATE, 95, 18),
        ("relay:mx", "lee@mail.bigisp.example", Status.DEFERRED, RATE, 95, 26),
        ("relay:mx", "pat@corp-legacy.example", Status.DEFERRED, TIMEOUT, 95, 55),
    ]),
    ("Invoice INV-1042 for March", "billing@acme.example", [
        ("relay:mx", "accounts@corp-legacy.example", Status.DEFERRED, TIMEOUT, 2900, 110),
        ("relay:mx", "dana@tiny.example", Status.HELD, FULL, 2900, None),
    ]),
    ("[FIRING] disk usage above 90% on db-2", "alerts@monitor.example", [
        ("relay:backup", "pager@partner.example", Status.FAILED, DENIED, 7, None),
    ]),
]  # fmt: skip


async def seed_queue(store: Store) -> list[str]:
    """Store QUEUE's messages with their recipients' last replies and attempts; their ids."""
    now = time.time()
    message_ids = []
    for subject, sender, rcpts in QUEUE:
        raw = f"From: {sender}\r\nTo: undisclosed-recipients:;\r\nSubject: {subject}\r\n\r\nHi\r\n"
        message_id = ids.new_id()
        received = now - rcpts[0][4] * 60
        await store.add_message(
            NewMessage(
                id=message_id,
                received_at=received,
                mail_from=sender,
                recipients=[NewRecipient(r[1], r[0], Status.CAPTURED) for r in rcpts],
                raw=raw.encode(),
                summary=mime.summary.full(raw.encode()),
                listener="submission",
                peer="10.0.4.17",
                auth_user="app",
            )
        )
        message_ids.append(message_id)
        async with store.db.writer.begin() as conn:
            for route, address, status, (code, enhanced, text), _ago, next_in in rcpts:
                tries = 3 if status is Status.DEFERRED and next_in and next_in > 30 else 1
                row = await conn.execute(
                    update(recipient)
                    .where(recipient.c.message_id == message_id, recipient.c.address == address)
                    .values(
                        route=route,
                        status=status.value,
                        attempts=tries,
                        next_attempt_at=now + next_in * 60 if next_in else None,
                        last_code=code,
                        last_enhanced=enhanced,
                        last_text=text,
                        updated_at=now - (next_in or 1) * 7,
                    )
                    .returning(recipient.c.id)
                )
                rid = row.scalar_one()
                host = "smtp.ourcompany.example:587" if route == "relay:smarthost" else ""
                await conn.execute(
                    insert(attempt),
                    [
                        {
                            "recipient_id": rid,
                            "started_at": received + 5 + i * 600,
                            "duration": 0.4 + i,
                            "host": host or f"mx1.{address.split('@')[1]}:25",
                            "code": code,
                            "enhanced": enhanced,
                            "text": text,
                        }
                        for i in range(tries)
                    ],
                )
    # The big ISP pushed back three times in a row: its circuit breaker paused it.
    limits = DestinationLimits(breaker_failures=3, breaker_pause=1800.0)
    pushback = Outcome("relay:mx:mail.bigisp.example", " ".join(map(str, RATE)), limits)
    await store.queue.finish("seed", [], now, [pushback] * 3)
    return message_ids
