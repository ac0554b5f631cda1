"""Jinja2 templates and the filters they use."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.templating import Jinja2Templates

from relay import query
from relay.status import Status

STATUS_LABELS = {
    Status.CAPTURED.value: "Captured",
    Status.QUEUED.value: "Queued",
    Status.DEFERRED.value: "Deferred",
    Status.DELIVERED.value: "Delivered",
    Status.FAILED.value: "Failed",
    Status.HELD.value: "Held",
    Status.CANCELLED.value: "Cancelled",
}
"""The statuses a message can show, in navigation order."""

TAB_LABELS = {
    "html": "HTML",
    "text": "Text",
    "headers": "Headers",
    "source": "Source",
    "attachments": "Attachments",
    "deliveries": "Deliveries",
    "html-check": "HTML check",
    "link-check": "Link check",
    "spam-check": "Spam check",
}


def display_name(value: str) -> str:
    """The name part of an address header ("Alice <a@x>" → "Alice"), else the address."""
    name, addr = parseaddr(value)
    return name or addr or value


def format_time(epoch: float) -> str:
    """Local time of an epoch, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def list_time(epoch: float) -> str:
    """When a message came in, short enough for the list's column (local time): the time
    when it is today, else the day and the time, and only the date before this year."""
    when, now = time.localtime(epoch), time.localtime()
    if when[:3] == now[:3]:
        return time.strftime("%H:%M:%S", when)
    return time.strftime("%b %d, %H:%M" if when.tm_year == now.tm_year else "%Y-%m-%d", when)


def iso_time(epoch: float) -> str:
    """An epoch as an ISO 8601 UTC timestamp, for `<time datetime>`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def format_size(size: int) -> str:
    """A byte count for people: 512 B, 4.2 kB, 1.3 MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def format_duration(seconds: float) -> str:
    """A duration for people: 35 ms, 2.1 s."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def span(seconds: float) -> str:
    """A length of time for people, two units at most: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def ago(epoch: float) -> str:
    """How long ago an epoch was: "3 h 5 min"."""
    return span(time.time() - epoch)


def until(epoch: float) -> str:
    """How long until an epoch: "in 4 min", or "due now" once it has passed."""
    left = epoch - time.time()
    return f"in {span(left)}" if left >= 1 else "due now"


def tag_query(name: str) -> str:
    """The search for messages with the tag `name`: tag:invoice, tag:"two words"."""
    return str(query.Term(query.Field.TAG, name))


def percent(value: float) -> str:
    """A percentage for people: 84.95 → "85%", 0.4 → "0.4%"."""
    return f"{value:.0f}%" if value >= 1 or value == 0 else f"{value:.1f}%"


@jinja2.pass_context
def path_for(context: Any, name: str, /, **params: Any) -> str:
    """The path (not the absolute URL) of route `name`: right behind any proxy."""
    return str(context["request"].app.url_path_for(name, **params))


@jinja2.pass_context
def list_url(context: Any, /, **changes: Any) -> str:
    """The list's path with the current filters, some of them changed (None drops one)."""
    params: dict[str, Any] = dict(context.get("params", {}))
    params.update(changes)
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", 0)})
    path = str(context["request"].app.url_path_for("list"))
    return f"{path}?{query}" if query else path


@jinja2.pass_context
def queue_url(context: Any, /, **changes: Any) -> str:
    """The queue page's path with the current filters, some of them changed."""
    params: dict[str, Any] = dict(context.get("queue_params", {}))
    params.update(changes)
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", 0)})
    path = str(context["request"].app.url_path_for("queue"))
    return f"{path}?{query}" if query else path


def make_templates(directory: Path) -> Jinja2Templates:
    """The template set with relay's filters installed."""
    templates = Jinja2Templates(directory=str(directory))
    env = templates.env
    env.filters["time"] = format_time
    env.filters["list_time"] = list_time
    env.filters["iso"] = iso_time
    env.filters["size"] = format_size
    env.filters["name"] = display_name
    env.filters["duration"] = format_duration
    env.filters["ago"] = ago
    env.filters["until"] = until
    env.filters["tag_query"] = tag_query
    env.filters["percent"] = percent
    env.globals["path_for"] = path_for
    env.globals["list_url"] = list_url
    env.globals["queue_url"] = queue_url
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    env.globals["TAB_LABELS"] = TAB_LABELS
    return templates
