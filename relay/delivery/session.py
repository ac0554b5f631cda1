"""One SMTP transaction over an open connection: MAIL, a RCPT per recipient, DATA.

Each recipient gets its own reply: its RCPT reply when refused, else the DATA reply. A
reply to MAIL, or a 421 anywhere (the server is closing the connection), answers for every
recipient not answered yet. A connection that breaks raises, for the caller to decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosmtplib

from relay.delivery import retry
from relay.delivery.data import send_data
from relay.delivery.retry import Reply

SERVICE_CLOSING = 421
NO_SMTPUTF8 = "5.6.7"  # RFC 6531: non-ASCII address and no SMTPUTF8 on the server
BAD_SENDER = "5.1.7"
BAD_RECIPIENT = "5.1.3"


def null_to_empty(sender: str) -> str:
    """The reverse path as sent after MAIL FROM: "" for the null sender, however stored."""
    return "" if sender.strip() in ("", "<>") else sender


@dataclass(frozen=True)
class Envelope:
    """What one transaction carries: the sender, the recipients and the message bytes."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


def _options(smtp: aiosmtplib.SMTP, envelope: Envelope, utf8: bool) -> list[str]:
    options: list[str] = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(envelope.data)}")
    if smtp.supports_extension("8bitmime") and not envelope.data.isascii():
        options.append("BODY=8BITMIME")
    if utf8:
        options.append("SMTPUTF8")
    return options


async def transact(smtp: aiosmtplib.SMTP, envelope: Envelope) -> list[Reply]:
    """Run one transaction; return a reply per recipient, in order.

    Raises aiosmtplib.SMTPServerDisconnected (or another connection error) when the
    connection breaks before the transaction is answered.
    """
    count = len(envelope.recipients)
    sender = null_to_empty(envelope.mail_from)
    utf8 = not all(a.isascii() for a in (sender, *envelope.recipients))
    if utf8 and not smtp.supports_extension("smtputf8"):
        reply = retry.local(
            "the server does not support SMTPUTF8, needed for this address", NO_SMTPUTF8, False
        )
        return [reply] * count
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await smtp.mail(sender, options=_options(smtp, envelope, utf8), encoding=encoding)
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(smtp)
        return [retry.parse(exc.code, exc.message)] * count
    except ValueError as exc:  # aiosmtplib refuses to put this address on the wire
        return [retry.local(f"bad sender address: {exc}", BAD_SENDER, False)] * count
    replies: list[Reply | None] = [None] * count
    accepted: list[int] = []
    for index, rcpt in enumerate(envelope.recipients):
        try:
            await smtp.rcpt(rcpt, encoding=encoding)
        except ValueError as exc:
            replies[index] = retry.local(f"bad recipient address: {exc}", BAD_RECIPIENT, False)
            continue
        except aiosmtplib.SMTPResponseException as exc:
            refused = retry.parse(exc.code, exc.message)
            replies[index] = refused
            if exc.code == SERVICE_CLOSING:
                return [r if r is not None else refused for r in replies]
            continue
        accepted.append(index)
    if not accepted:
        await _reset(smtp)
        return _complete(replies)
    try:
        response = await send_data(smtp, envelope.data)
        outcome = retry.parse(response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        outcome = retry.parse(exc.code, exc.message)
    for index in accepted:
        replies[index] = outcome
    return _complete(replies)


def _complete(replies: list[Reply | None]) -> list[Reply]:
    done = [r for r in replies if r is not None]
    assert len(done) == len(replies), "a recipient was left without a reply"
    return done


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refused transaction, so the connection can carry the next one."""
    if smtp.is_connected:
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
