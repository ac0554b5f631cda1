"""A message as a test sees it: read from the raw bytes relay stored, with the standard
library's email package, so that what a test checks is what a mail client would get."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import cached_property
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.testing.client import Client

_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?"


@dataclass(frozen=True)
class Attachment:
    """One attachment: its file name, its content type and its decoded bytes."""

    name: str
    content_type: str
    data: bytes


class _Links(HTMLParser):
    """The href of every <a> and <area> of an HTML body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            href = dict(attrs).get("href")
            if href and href.strip():
                self.found.append(href.strip())


def links_of(text: str, html: str) -> list[str]:
    """The links of a message: <a href> of the HTML, then URLs in the text; each once."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    found = parser.found + [url.rstrip(_TRAILING) for url in _URL.findall(text)]
    return list(dict.fromkeys(found))


class Message:
    """One stored message. `subject`, `sender`, `to` and `cc` come with the listing; the
    rest is read from the raw bytes, fetched once when first asked for."""

    def __init__(self, summary: dict[str, Any], client: Client) -> None:
        self.summary = summary
        self._client = client

    @property
    def id(self) -> str:
        """relay's ID of the message."""
        return str(self.summary["ID"])

    @property
    def subject(self) -> str:
        """The decoded Subject."""
        return str(self.summary.get("Subject") or "")

    @property
    def sender(self) -> str:
        """The address of the From header."""
        return str((self.summary.get("From") or {}).get("Address") or "")

    @property
    def to(self) -> list[str]:
        """The addresses of the To header."""
        return [str(a["Address"]) for a in self.summary.get("To") or []]

    @property
    def cc(self) -> list[str]:
        """The addresses of the Cc header."""
        return [str(a["Address"]) for a in self.summary.get("Cc") or []]

    @cached_property
    def raw(self) -> bytes:
        """The message exactly as relay stored it (with relay's Received header)."""
        return self._client.raw(self.id)

    @cached_property
    def parsed(self) -> EmailMessage:
        """The whole message, parsed by the email package (policy `default`)."""
        message = email.message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def headers(self) -> EmailMessage:
        """The headers: `headers["Subject"]`, `headers.get_all("Received")`."""
        return self.parsed

    @cached_property
    def text(self) -> str:
        """The plain-text body, decoded ("" when there is none)."""
        return self._body("plain")

    @cached_property
    def html(self) -> str:
        """The HTML body, decoded ("" when there is none)."""
        return self._body("html")

    def _body(self, subtype: str) -> str:
        part = self.parsed.get_body(preferencelist=(subtype,))
        if part is None:
            return ""
        content = part.get_content()
        return content if isinstance(content, str) else content.decode("utf-8", "replace")

    @cached_property
    def attachments(self) -> list[Attachment]:
        """The attachments, in the order of the message."""
        found = []
        for part in self.parsed.iter_attachments():
            data = part.get_payload(decode=True)
            found.append(
                Attachment(
                    part.get_filename() or "",
                    part.get_content_type(),
                    data if isinstance(data, bytes) else b"",
                )
            )
        return found

    @cached_property
    def links(self) -> list[str]:
        """Every link of the message: from the HTML's <a href>, then URLs in the text."""
        return links_of(self.text, self.html)

    def __repr__(self) -> str:
        return f"<Message {self.id} from {self.sender!r} to {self.to!r}: {self.subject!r}>"
