"""Accept one message into the store: route each recipient, add our Received header,
summarise, commit. What SMTP DATA does after reading the message, as a function that
other front doors (the HTTP send API, later the SMTP handler itself) share.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from relay import address, ids, mime, routing, summary
from relay.config import Config
from relay.errors import RelayError
from relay.offload import INGEST
from relay.smtp.received import received_header
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store


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


class Refused(RelayError):
    """Some recipients may not be accepted; `addresses` maps each to the reason."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        detail = "; ".join(f"{a}: {why}" for a, why in addresses.items())
        super().__init__(f"recipients refused: {detail}")


REJECTED = "rejected by a route"
RELAY_DENIED = "relaying needs an authenticated or trusted client"


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
            status = Status.QUEUED if decision.action == "relay" else Status.CAPTURED
            routed.append(NewRecipient(rcpt, decision.label, status))
    if refused:
        raise Refused(refused)
    return routed


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
    fields = await INGEST.run(len(raw), summary.summarize, raw)  # never raises
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
            helo=mime.clean(origin.helo),
            auth_user=origin.auth_user,
            tls=origin.tls,
        )
    )
    return message_id
