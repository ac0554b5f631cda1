"""The HTML body of a message made fit for its sandboxed frame (pure string work).

The real protection is the browser's: the frame's `sandbox` attribute and the body's own
Content-Security-Policy (no scripts, forms, plugins, base URL or remote loads, unless the
user asks for remote images, and then only images over https). The rewrites here are for
comfort and depth: `cid:` references point at our part URLs, links open in a new tab, and
`<meta http-equiv>` (refresh, set-cookie, CSP) loses its meaning.
"""

from __future__ import annotations

import re
from urllib.parse import quote

BLOCKED_IMAGES_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox "
    "allow-popups allow-popups-to-escape-sandbox"
)
"""The body's policy: only our own images (cid: parts) and data: URLs."""

REMOTE_IMAGES_CSP = BLOCKED_IMAGES_CSP.replace(
    "img-src 'self' data:", "img-src 'self' data: https:"
)
"""The body's policy once the user asked for remote images: images over https too."""

FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
"""The iframe's sandbox: no scripts, forms, same-origin or top navigation; links may open
a new tab (which leaves the sandbox, as a link clicked in a mail client would)."""

_CID = re.compile(r"""(["'(]\s*)cid:([^"')\s>]+)""", re.IGNORECASE)
_REMOTE = re.compile(
    r"""(?:\b(?:src|background|poster|srcset)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:https?:)?//""",
    re.IGNORECASE,
)
_HTTP_EQUIV = re.compile(r"(<meta\b[^>]*?\s)(http-equiv)(\s*=)", re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)
_BASE_TARGET = '<base target="_blank">'


def rewrite_cids(html: str, message_id: str, cid_map: dict[str, str]) -> str:
    """Point `cid:` references at this message's part URLs."""

    def replace(match: re.Match[str]) -> str:
        part_id = cid_map.get(match.group(2))
        if part_id is None:
            return match.group(0)
        return f"{match.group(1)}/message/{quote(message_id)}/part/{part_id}"

    return _CID.sub(replace, html)


def has_remote_content(html: str) -> bool:
    """True when the HTML refers to images or other resources on other hosts."""
    return _REMOTE.search(html) is not None


def _neutralize_meta(html: str) -> str:
    return _HTTP_EQUIV.sub(r"\1data-blocked-\2\3", html)


def _links_in_new_tab(html: str) -> str:
    head = _HEAD.search(html)
    if head:
        return html[: head.end()] + _BASE_TARGET + html[head.end() :]
    doctype = _DOCTYPE.search(html)
    if doctype:
        return html[: doctype.end()] + _BASE_TARGET + html[doctype.end() :]
    return _BASE_TARGET + html


def prepare(html: str, message_id: str, cid_map: dict[str, str], new_tab: bool = True) -> str:
    """The HTML as served into the frame (links in a new tab unless `new_tab` is False)."""
    safe = _neutralize_meta(rewrite_cids(html, message_id, cid_map))
    return _links_in_new_tab(safe) if new_tab else safe


def csp(remote_images: bool) -> str:
    """The body's Content-Security-Policy, with or without remote images."""
    return REMOTE_IMAGES_CSP if remote_images else BLOCKED_IMAGES_CSP
