"""Delivery status notifications (RFC 3464): the bounce sent to the envelope sender.

Off unless `[delivery] dsn = true`. Never sent for a message with a null sender (`<>`),
which is how bounces themselves travel, so that two servers never bounce at each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.utils import formatdate, make_msgid

from relay.delivery.retry import Reply


@dataclass(frozen=True)
class Failure:
    """A recipient that failed for good, with the reply that made it fail."""

    address: str
    reply: Reply
    host: str
    gave_up: bool = False


def wanted(mail_from: str) -> bool:
    """Whether a bounce may be sent for a message from `mail_from` (never to `<>`)."""
    return bool(mail_from.strip("<> "))


def _status_code(reply: Reply) -> str:
    if reply.enhanced.startswith("5"):
        return reply.enhanced
    return "5.4.7" if reply.transient else "5.0.0"  # 5.4.7: delivery time expired


def _human(failures: Sequence[Failure], hostname: str) -> str:
    lines = [
        f"This is the mail system at {hostname}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        "It is attached below (headers only).",
        "",
    ]
    for failure in failures:
        why = "gave up retrying; last reply" if failure.gave_up else "reply"
        where = f" from {failure.host}" if failure.host else ""
        lines.append(f"<{failure.address}>: {why}{where}: {failure.reply}")
    return "\r\n".join(lines) + "\r\n"


def build(
    *,
    original: bytes,
    mail_from: str,
    failures: Sequence[Failure],
    hostname: str,
    received_at: float,
    now: float,
) -> bytes:
    """The bytes of a multipart/report bounce to `mail_from` about `failures`."""
    report = EmailMessage(policy=policy.SMTP)
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{hostname}>"
    report["To"] = mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate(now)
    report["Message-ID"] = make_msgid(domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    report.set_content(_human(failures, hostname))
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")

    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["Arrival-Date"] = formatdate(received_at)
    blocks: list[Message | str] = [per_message]
    for failure in failures:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {failure.address}"
        block["Action"] = "failed"
        block["Status"] = _status_code(failure.reply)
        if failure.host:
            block["Remote-MTA"] = f"dns; {failure.host.split('[')[0].rsplit(':', 1)[0]}"
        if failure.reply.code is not None:
            block["Diagnostic-Code"] = f"smtp; {failure.reply}"
        block["Last-Attempt-Date"] = formatdate(now)
        blocks.append(block)
    status = EmailMessage()
    status["Content-Type"] = "message/delivery-status"
    status.set_payload(blocks)
    report.attach(status)

    headers = EmailMessage()
    headers["Content-Type"] = "text/rfc822-headers"
    head = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    headers.set_payload(head.decode("utf-8", errors="replace"))
    report.attach(headers)
    return report.as_bytes()
