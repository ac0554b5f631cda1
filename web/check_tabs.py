"""The message page's check tabs: HTML check, Link check and Spam check.

Opening a tab asks for its check (web/checks.py: run once per message, then kept), and the
tab shows the answer as people read it: the HTML check's overall score and, per feature,
the clients where it fails (narrowed to one platform if asked), each link with its status,
the spam score with the rules that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from relay import mime
from relay.checks.html_compat import HtmlCheckResponse, HtmlCheckWarning, filter_platforms
from relay.store import MessageRow
from web import checks

CHECK_TABS = ("html-check", "link-check", "spam-check")
PLATFORM_LABELS = {
    "android": "Android",
    "desktop-webmail": "Desktop webmail",
    "ios": "iOS",
    "macos": "macOS",
    "mobile-webmail": "Mobile webmail",
    "outlook-com": "Outlook.com",
    "windows": "Windows",
    "windows-mail": "Windows Mail",
}


@dataclass(frozen=True)
class Feature:
    """One feature of the HTML check as the tab shows it."""

    warning: HtmlCheckWarning
    failing: list[str] = field(default_factory=list)
    """Clients (with version) that do not support it."""
    partly: list[tuple[str, str]] = field(default_factory=list)
    """Clients that support it in part, each with its note's number ("" for none)."""
    notes: dict[str, str] = field(default_factory=dict)
    """The notes those clients refer to, by number."""


def feature(warning: HtmlCheckWarning) -> Feature:
    """Where a feature fails: the clients that do not, or only partly, support it."""
    found = Feature(warning)
    for result in warning["Results"]:
        if result["Support"] == "no":
            found.failing.append(result["Name"])
        elif result["Support"] == "partial":
            note = result["NoteNumber"]
            found.partly.append((result["Name"], note))
            if note in warning["NotesByNumber"]:
                found.notes[note] = warning["NotesByNumber"][note]
    return found


def platform_label(platform: str) -> str:
    """A platform key of caniemail ("desktop-webmail") as people name it."""
    return PLATFORM_LABELS.get(platform, platform.replace("-", " ").capitalize())


async def _html(request: Request, row: MessageRow, view: mime.view.MessageView) -> dict[str, Any]:
    if not view.html:
        return {"no_html": True}
    answer: HtmlCheckResponse = await checks.html_check(request, row.id)
    platform = request.query_params.get("platform", "")
    if platform and platform not in answer["Platforms"]:
        raise HTTPException(400, f"platform must be one of {', '.join(answer['Platforms'])}")
    shown = filter_platforms(answer, [platform] if platform else [])
    return {
        "check": shown,
        "features": [feature(w) for w in shown["Warnings"]],
        "platform": platform,
        "platforms": {p: platform_label(p) for p in answer["Platforms"]},
    }


async def _links(request: Request, row: MessageRow) -> dict[str, Any]:
    follow = request.query_params.get("follow") == "1"
    return {"check": await checks.link_check(request, row.id, follow), "follow": follow}


async def _spam(request: Request, row: MessageRow) -> dict[str, Any]:
    if not checks.spam_configured(request):
        return {"spam_off": True}
    return {"check": await checks.spam_check(request, row.id)}


async def check_tab(
    request: Request, tab: str, row: MessageRow, view: mime.view.MessageView
) -> dict[str, Any]:
    """What a check tab shows (nothing for another tab); 404 when the message went."""
    try:
        if tab == "html-check":
            return await _html(request, row, view)
        if tab == "link-check":
            return await _links(request, row)
        if tab == "spam-check":
            return await _spam(request, row)
    except checks.NoMessage:
        raise HTTPException(404, "no such message") from None
    return {}
