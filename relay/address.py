"""Pure helpers for envelope addresses: the deduplication key, the domain, validity, and
whether an address can travel at all."""

from __future__ import annotations

import ipaddress
import re

_UNSENDABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters (CR, LF and NUL among them) have no place in an SMTP address
(RFC 5321 §4.1.2, RFC 6531); surrogates are bytes that were not valid UTF-8."""


def split(address: str) -> tuple[str, str]:
    """Split an address into local part and domain ("" when there is no @)."""
    local, sep, domain = address.rpartition("@")
    if not sep:
        return address, ""
    return local, domain


def domain_of(address: str) -> str:
    """The domain of an address, lower-cased, without a trailing dot."""
    return split(address)[1].lower().rstrip(".")


def dedup_key(address: str) -> str:
    """Key under which two recipients are the same: local part as given, domain case-folded.

    RFC 5321 §2.4 lets the local part be case-sensitive, so `USER@Example.com` and
    `USER@example.com` are one recipient while `user@example.com` is another.
    """
    local, domain = split(address)
    if not domain:
        return local
    return f"{local}@{domain.lower().rstrip('.')}"


def dedupe(addresses: list[str]) -> list[str]:
    """The addresses with later duplicates (by `dedup_key`) dropped, order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for address in addresses:
        key = dedup_key(address)
        if key not in seen:
            seen.add(key)
            out.append(address)
    return out


# RFC 5321 §4.1.2 Mailbox, with RFC 6531 (SMTPUTF8) letters allowed in both parts.
_WIDE = "\u0080-\U0010ffff"
_ATOM = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_WIDE}]+"
_LOCAL = re.compile(rf'{_ATOM}(\.{_ATOM})*|"([^"\\]|\\.)*"')
_LABEL = re.compile(rf"[A-Za-z0-9{_WIDE}]([A-Za-z0-9\-{_WIDE}]{{0,61}}[A-Za-z0-9{_WIDE}])?")
MAX_LENGTH = 254
"""The longest address a forward-path can carry (RFC 5321 §4.5.3.1.3, less the brackets)."""


def problem(address: str) -> str | None:
    """Why `address` cannot be an envelope recipient, in words; None when it can."""
    if "\r" in address or "\n" in address:
        return "contains a line break"
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        return "contains a control character"
    if len(address) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    local, domain = split(address)
    if not local or not domain:
        return "is not an address like name@example.com"
    if len(local.encode()) > 64:
        return "has a local part longer than 64 bytes"
    if not _LOCAL.fullmatch(local):
        return f"has a local part ({local}) that is not allowed unquoted"
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1].removeprefix("IPv6:")
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return f"has an address literal ({domain}) that is not an IP address"
        return None
    labels = domain.rstrip(".").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return f"has a domain ({domain}) that is not a host name"
    return None


def sendable(address: str) -> bool:
    """Whether `address` may be stored and put on the wire: no control characters (CR, LF,
    NUL...) and no undecodable bytes."""
    return _UNSENDABLE.search(address) is None
