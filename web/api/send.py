"""POST /api/v1/send: a message as JSON (Mailpit's SendRequest) → a MIME message built
with the `email` package → stored like one that came over SMTP, each recipient routed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import mimetypes
import re
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.ingest import Origin, Refused, submit
from relay.metrics import ACCEPTED, FAILED, REJECTED
from web.api.common import ApiError, endpoint, guard_change, json_body, metrics_of, string_list
from web.api.tags import tag_names
from web.pages import config_of, store_of

LISTENER = "api"
"""The listener name recorded on messages sent through the API."""

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII without ":" (RFC 5322 ftext)
_RESERVED = {"content-type", "content-transfer-encoding", "mime-version"}


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def _contact(value: Any, key: str) -> tuple[str, str]:
    """(name, email) of a {"Email", "Name"} object; 400 when it is not one."""
    if not isinstance(value, dict) or not isinstance(value.get("Email"), str):
        raise ApiError(400, f"{key} needs an object with an Email")
    name = value.get("Name") or ""
    if not isinstance(name, str):
        raise ApiError(400, f"{key}.Name must be a string")
    email = value["Email"].strip()
    if not email or any(c in email for c in "\r\n<>, "):
        raise ApiError(400, f"{key}.Email is not an address: {email!r}")
    return name, email


def _contacts(data: dict[str, Any], key: str) -> list[tuple[str, str]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{key} must be an array")
    return [_contact(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _attachment(item: Any, index: int) -> tuple[bytes, str, str, str]:
    """(content, filename, content type, content id) of one attachment object."""
    where = f"Attachments[{index}]"
    if not isinstance(item, dict):
        raise ApiError(400, f"{where} must be an object")
    filename = item.get("Filename")
    content = item.get("Content")
    if not isinstance(filename, str) or not filename or not isinstance(content, str):
        raise ApiError(400, f"{where} needs a Filename and a base64 Content")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}.Content is not base64") from None
    ctype = item.get("ContentType") or mimetypes.guess_type(filename)[0]
    ctype = ctype or "application/octet-stream"
    cid = item.get("ContentID") or ""
    if not isinstance(ctype, str) or ctype.count("/") != 1 or not isinstance(cid, str):
        raise ApiError(400, f"{where}: ContentType must be type/subtype, ContentID a string")
    return data, filename, ctype, cid


def _set_headers(msg: EmailMessage, data: dict[str, Any]) -> None:
    extra = data.get("Headers") or {}
    if not isinstance(extra, dict):
        raise ApiError(400, "Headers must be an object of strings")
    for name, value in extra.items():
        if not isinstance(value, str) or not _HEADER_NAME.fullmatch(name):
            raise ApiError(400, f"Headers: bad header {name!r}")
        if name.lower() in _RESERVED:
            raise ApiError(400, f"Headers: {name} is set from the body and attachments")
        del msg[name]
        msg[name] = value
    tags = string_list(data, "Tags")
    if tags:  # Mailpit's way: the tags travel in the X-Tags header, as SMTP mail's do
        del msg["X-Tags"]
        msg["X-Tags"] = ", ".join(tag_names(tags))


def build(data: dict[str, Any], hostname: str, now: float) -> tuple[str, list[str], bytes]:
    """(envelope sender, recipients, raw bytes) of a SendRequest; ApiError when it is bad."""
    sender = _contact(data.get("From"), "From")
    to, cc = _contacts(data, "To"), _contacts(data, "Cc")
    reply_to = _contacts(data, "ReplyTo")
    bcc = string_list(data, "Bcc")
    text, html = _text(data, "Text"), _text(data, "HTML")
    msg = EmailMessage(policy=policy.SMTP)
    try:
        msg["From"] = formataddr(sender)
        if to:
            msg["To"] = ", ".join(formataddr(c) for c in to)
        if cc:
            msg["Cc"] = ", ".join(formataddr(c) for c in cc)
        if reply_to:
            msg["Reply-To"] = ", ".join(formataddr(c) for c in reply_to)
        msg["Subject"] = _text(data, "Subject")
        msg["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
        msg["Message-ID"] = make_msgid(domain=hostname)
        _set_headers(msg, data)
        msg.set_content(text or ("" if html else "\n"))
        if html:
            msg.add_alternative(html, subtype="html")
        attachments = data.get("Attachments") or []
        if not isinstance(attachments, list):
            raise ApiError(400, "Attachments must be an array")
        for index, item in enumerate(attachments):
            content, filename, ctype, cid = _attachment(item, index)
            maintype, subtype = ctype.split("/")
            if cid and html:
                body = msg.get_body(preferencelist=("html",))
                assert body is not None
                body.add_related(
                    content,
                    maintype,
                    subtype,
                    cid=f"<{cid}>",
                    filename=filename,
                    disposition="inline",
                )
            else:
                msg.add_attachment(content, maintype, subtype, filename=filename)
        raw = msg.as_bytes()
    except ValueError as exc:  # a header value with a line break, a bad address…
        raise ApiError(400, f"cannot build the message: {exc}") from None
    recipients = [c[1] for c in to + cc] + [b.strip() for b in bcc if b.strip()]
    return sender[1], recipients, raw


def _may_relay(request: Request) -> bool:
    """Relaying from the API needs a logged-in user or a client on this machine."""
    if getattr(request.state, "user", None):
        return True
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@endpoint
async def send(request: Request) -> Response:
    """POST /api/v1/send: store the message; answer {"ID": ...}."""
    guard_change(request)
    config = config_of(request)
    metrics = metrics_of(request)
    sender, recipients, raw = build(await json_body(request), config.server.host_name, time.time())
    peer = request.client.host if request.client else "unknown"
    origin = Origin(
        listener=LISTENER,
        peer=peer,
        auth_user=getattr(request.state, "user", None),
        owns_mail=request.headers.get("authorization", "")[:7].lower() != "bearer ",
        tls=request.url.scheme == "https",
        protocol="HTTP",
        may_relay=_may_relay(request),
    )
    try:
        message_id = await submit(store_of(request), config, sender, recipients, raw, origin)
    except Refused as exc:
        metrics.received(LISTENER, REJECTED)
        raise ApiError(400, str(exc)) from None
    except Exception:
        metrics.received(LISTENER, FAILED)
        raise
    metrics.received(LISTENER, ACCEPTED, len(raw))
    return JSONResponse({"ID": message_id})
