"""One SMTP transaction over an open connection: RSET when it is reused, MAIL, a RCPT per
recipient, DATA.

When the server offers PIPELINING (RFC 2920), RSET, MAIL, the RCPTs and DATA go out in one
write and the message in the next: two round trips in all instead of one per command.

Each recipient gets its own reply: its RCPT reply when refused, else the DATA reply. A
reply to MAIL, or a 421 anywhere (the server is closing the connection), answers for every
recipient not answered yet. A connection that breaks raises, for the caller to decide; so
does a refused RSET (the connection is not fit for another transaction).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.email import quote_address

from relay.delivery import retry
from relay.delivery.channel import Channel
from relay.delivery.retry import Reply
from relay.delivery.wire import END_OF_DATA, send_data

SERVICE_CLOSING = 421
START_INPUT = 354
NO_SMTPUTF8 = "5.6.7"  # RFC 6531: non-ASCII address and no SMTPUTF8 on the server
BAD_SENDER = "5.1.7"
BAD_RECIPIENT = "5.1.3"
RSET = b"RSET\r\n"
DATA = b"DATA\r\n"
_ATOMS = r"[^\s\x00-\x1f\x7f<>\"(),:;\\\[\]@]+"
_PLAIN_ADDRESS = re.compile(f"{_ATOMS}@{_ATOMS}")
"""local@domain with nothing that needs quoting or parsing."""


def null_to_empty(sender: str) -> str:
    """The reverse path as sent after MAIL FROM: "" for the null sender, however stored."""
    return "" if sender.strip() in ("", "<>") else sender


@dataclass(frozen=True)
class Envelope:
    """What one transaction carries: the sender, the recipients and the message bytes."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


def _options(channel: Channel, envelope: Envelope, utf8: bool) -> list[str]:
    options: list[str] = []
    if channel.offers("size"):
        options.append(f"SIZE={len(envelope.data)}")
    if channel.offers("8bitmime") and not envelope.data.isascii():
        options.append("BODY=8BITMIME")
    if utf8:
        options.append("SMTPUTF8")
    return options


def command(verb: bytes, address: str, encoding: str, options: Sequence[str] = ()) -> bytes:
    """`MAIL FROM:<address>` or `RCPT TO:<address>` with options, as a line to send; raises
    ValueError for an address that cannot be put on the command line safely."""
    if _PLAIN_ADDRESS.fullmatch(address):  # nearly always: no need to parse it
        quoted = f"<{address}>"
    elif any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise ValueError(f"address {address!r} holds control characters")
    else:
        quoted = quote_address(address) if address else "<>"
        if address and quoted != f"<{address}>":  # parsed into something else: not sent
            raise ValueError(f"address {address!r} would go out as {quoted}")
    return b" ".join([verb + quoted.encode(encoding), *(o.encode() for o in options)]) + b"\r\n"


class _Exchange:
    """Replies read in order; without PIPELINING each command is written just before."""

    def __init__(self, channel: Channel, pipelined: bool, timeout: float) -> None:
        self.channel = channel
        self.pipelined = pipelined
        self.timeout = timeout

    async def ask(self, line: bytes) -> SMTPResponse:
        """The reply to `line` (written now unless the whole group already was)."""
        if not self.pipelined:
            self.channel.write(line)
        return await self.answer()

    async def answer(self) -> SMTPResponse:
        """The next reply; a timeout closes the connection and raises."""
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.channel.reply()
        except TimeoutError:
            self.channel.close()
            raise aiosmtplib.SMTPTimeoutError("timed out waiting for the server's reply") from None
        if reply.code == SERVICE_CLOSING:
            self.channel.close()
        return reply


async def transact(
    channel: Channel, envelope: Envelope, *, reset: bool, command_timeout: float
) -> list[Reply]:
    """Run one transaction; return a reply per recipient, in order. `reset`: say RSET
    first (the connection carried a transaction before). Each reply is waited for up to
    `command_timeout` seconds, and so is the message's whole DATA phase.

    Raises aiosmtplib.SMTPServerDisconnected (or another connection error) when the
    connection breaks before the transaction is answered, and when RSET is refused.
    """
    prepared = _prepare(channel, envelope)
    if isinstance(prepared, list):
        return prepared
    if not prepared.rcpts:
        return _complete(prepared.replies)
    exchange = _Exchange(channel, channel.offers("pipelining"), command_timeout)
    return await _converse(exchange, envelope, prepared, reset)


@dataclass
class _Prepared:
    """The commands of a transaction, and the recipients refused before it is spoken."""

    mail: bytes
    rcpts: list[tuple[int, bytes]]  # (index of the recipient, its RCPT command)
    replies: list[Reply | None]


def _prepare(channel: Channel, envelope: Envelope) -> _Prepared | list[Reply]:
    """The MAIL and RCPT commands of `envelope`, or a reply for every recipient when the
    transaction cannot be spoken at all (an address this server cannot take)."""
    count = len(envelope.recipients)
    sender = null_to_empty(envelope.mail_from)
    utf8 = not all(a.isascii() for a in (sender, *envelope.recipients))
    if utf8 and not channel.offers("smtputf8"):
        reply = retry.local(
            "the server does not support SMTPUTF8, needed for this address", NO_SMTPUTF8, False
        )
        return [reply] * count
    encoding = "utf-8" if utf8 else "ascii"
    try:
        mail = command(b"MAIL FROM:", sender, encoding, _options(channel, envelope, utf8))
    except ValueError as exc:
        return [retry.local(f"bad sender address: {exc}", BAD_SENDER, False)] * count
    replies: list[Reply | None] = [None] * count
    rcpts: list[tuple[int, bytes]] = []
    for index, address in enumerate(envelope.recipients):
        try:
            rcpts.append((index, command(b"RCPT TO:", address, encoding)))
        except ValueError as exc:
            replies[index] = retry.local(f"bad recipient address: {exc}", BAD_RECIPIENT, False)
    return _Prepared(mail, rcpts, replies)


async def _converse(
    exchange: _Exchange, envelope: Envelope, prepared: _Prepared, reset: bool
) -> list[Reply]:
    """Say (RSET,) MAIL, the RCPTs and DATA, pipelined when offered; a reply per recipient."""
    channel, replies = exchange.channel, prepared.replies
    group = [RSET] if reset else []
    group += [prepared.mail, *(line for _, line in prepared.rcpts), DATA]
    if exchange.pipelined:
        channel.write(b"".join(group))
    unread = len(group)  # replies still to come for what was written (pipelined)

    async def refused(answer: Reply) -> list[Reply]:
        """Every recipient not answered yet gets `answer`; the group's other replies are
        read (and an accepted DATA ended) so that the connection can carry the next one."""
        if exchange.pipelined and channel.is_open:
            await _settle(exchange, unread)
        return [r if r is not None else answer for r in replies]

    if reset:
        unread -= 1
        answer = await exchange.ask(RSET)
        if answer.code // 100 != 2:
            channel.close()
            raise aiosmtplib.SMTPServerDisconnected(f"RSET answered {answer.code} {answer.message}")
    unread -= 1
    answer = await exchange.ask(prepared.mail)
    if answer.code // 100 != 2:
        return await refused(retry.parse(answer.code, answer.message))
    accepted: list[int] = []
    for index, line in prepared.rcpts:
        unread -= 1
        answer = await exchange.ask(line)
        if answer.code // 100 == 2:
            accepted.append(index)
            continue
        replies[index] = refusal = retry.parse(answer.code, answer.message)
        if answer.code == SERVICE_CLOSING:
            return await refused(refusal)
    if not accepted:
        return await refused(retry.parse(answer.code, answer.message))
    unread -= 1
    answer = await exchange.ask(DATA)
    if answer.code == START_INPUT:
        try:
            async with asyncio.timeout(exchange.timeout):
                await send_data(channel, envelope.data)
                answer = await channel.reply()
        except TimeoutError:
            channel.close()
            raise aiosmtplib.SMTPTimeoutError("timed out sending the message") from None
    outcome = retry.parse(answer.code, answer.message)
    for index in accepted:
        replies[index] = outcome
    return _complete(replies)


async def _settle(exchange: _Exchange, unread: int) -> None:
    """Read the `unread` replies left of a pipelined group whose transaction failed; DATA,
    its last command, accepted all the same (there was no recipient) gets an empty message."""
    answer: SMTPResponse | None = None
    for _ in range(unread):
        answer = await exchange.answer()
        if answer.code == SERVICE_CLOSING:
            return
    if answer is not None and answer.code == START_INPUT:
        exchange.channel.write(END_OF_DATA)
        await exchange.answer()


def _complete(replies: list[Reply | None]) -> list[Reply]:
    done = [r for r in replies if r is not None]
    assert len(done) == len(replies), "a recipient was left without a reply"
    return done
