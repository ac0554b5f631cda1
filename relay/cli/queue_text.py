"""What `relay queue` prints: tables for people and plain data for --json (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.cli.output import age, iso_time, table
from relay.status import next_attempt

if TYPE_CHECKING:
    from relay.store import (
        Group,
        MessageRow,
        Paused,
        QueuePage,
        QueueRow,
        QueueShape,
        RecipientTimeline,
        ShapeRow,
    )

REPLY_WIDTH = 60
INJECTED = "(injected by chaos)"
"""The HOST of an attempt a chaos rule made: nothing was sent, no upstream answered."""


def reply(code: int | None, enhanced: str | None, text: str | None, width: int = 0) -> str:
    """A reply in one line: "451 4.7.1 Greylisted", cut to `width` (0: whole)."""
    parts = (str(code or ""), enhanced or "", " ".join((text or "").split()))
    words = " ".join(p for p in parts if p)
    if width and len(words) > width:
        return words[: width - 1] + "…"
    return words or "-"


def next_try(epoch: float | None, now: float, status: str = "deferred") -> str:
    """When a recipient in `status` is tried next, for people: "in 4m 10s", "due", or "-"."""
    epoch = next_attempt(status, epoch)
    if epoch is None:
        return "-"
    return "due" if epoch <= now else f"in {age(epoch - now)}"


def row_data(row: QueueRow) -> dict[str, Any]:
    """One queue recipient as JSON data."""
    return {
        "id": row.id,
        "message_id": row.message_id,
        "address": row.address,
        "route": row.route,
        "destination": row.destination,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso_time(next_attempt(row.status, row.next_attempt_at)),
        "last_code": row.last_code,
        "last_enhanced": row.last_enhanced,
        "last_text": row.last_text,
        "error_group": str(row.error),
        "received_at": iso_time(row.received_at),
        "mail_from": row.mail_from,
        "subject": row.subject,
    }


def render_list(page: QueuePage, now: float) -> str:
    """A page of the queue as a table, with how much of the total it shows."""
    rows = [
        [
            r.id,
            r.message_id,
            r.status,
            r.attempts,
            next_try(r.next_attempt_at, now, r.status),
            r.destination,
            r.address,
            reply(r.last_code, r.last_enhanced, r.last_text, REPLY_WIDTH),
        ]
        for r in page.rows
    ]
    header = [
        "ID",
        "MESSAGE",
        "STATUS",
        "TRIES",
        "NEXT TRY",
        "DESTINATION",
        "ADDRESS",
        "LAST REPLY",
    ]
    first = page.offset + 1
    footer = f"{first}-{page.offset + len(page.rows)} of {page.total}"
    return f"{table(rows, header=header)}\n\n{footer}"


def paused_data(paused: Paused | None) -> dict[str, Any]:
    """A destination's pause as JSON fields (nulls when it is not paused)."""
    return {
        "paused_until": iso_time(paused.until) if paused else None,
        "paused_because": paused.reason if paused else None,
    }


def paused_words(paused: Paused, now: float) -> str:
    """ "paused until 2024-05-01T10:00:00Z (in 4m 10s), because 421 4.7.0 slow down"."""
    when = f"in {age(paused.until - now)}" if paused.until > now else "its probe goes next"
    return f"paused until {iso_time(paused.until)} ({when}), because {paused.reason}"


def group_data(group: Group) -> dict[str, Any]:
    """One destination or error group as JSON data."""
    return {
        "key": group.key,
        "count": group.count,
        "deferred": group.deferred,
        "failed": group.failed,
        "held": group.held,
        "oldest": iso_time(group.oldest),
        "next_attempt_at": iso_time(group.next_attempt_at),
        "code": group.code,
        "enhanced": group.enhanced,
        "sample": group.sample,
        **paused_data(group.paused),
    }


def render_groups(by: str, groups: list[Group], now: float) -> str:
    """Groups as a table, largest first; an error group's key (for --error) comes last."""
    counts = ["COUNT", "DEFERRED", "FAILED", "HELD", "OLDEST", "NEXT TRY"]
    rows = [
        [g.count, g.deferred, g.failed, g.held, age(now - g.oldest),
         next_try(g.next_attempt_at, now)]
        for g in groups
    ]  # fmt: skip
    if by == "error":
        return table([[*r, g.key] for r, g in zip(rows, groups, strict=True)], [*counts, "ERROR"])
    shown = table(
        [[g.key, *r] for r, g in zip(rows, groups, strict=True)], ["DESTINATION", *counts]
    )
    notes = [f"{g.key}: {paused_words(g.paused, now)}" for g in groups if g.paused]
    return "\n".join([shown, *(["", *notes] if notes else [])])


def shape_data(shape: QueueShape) -> dict[str, Any]:
    """The queue's shape as JSON data: the columns, the total, a row per destination."""
    from relay.store.shape import COLUMNS  # here, not on top: see output.run_async

    def row(r: ShapeRow) -> dict[str, Any]:
        return {"destination": r.destination, "counts": list(r.counts), **paused_data(r.paused)}

    return {
        "statuses": list(shape.statuses),
        "columns": list(COLUMNS),
        "total": list(shape.total.counts),
        "destinations": [row(r) for r in shape.rows],
    }


def render_shape(shape: QueueShape, now: float) -> str:
    """qshape's table: a TOTAL line, then a line per destination, counts right-aligned;
    then each paused destination's pause."""
    from relay.store.shape import COLUMNS  # here, not on top: see output.run_async

    lines = [["", *COLUMNS]]
    lines += [[r.destination, *map(str, r.counts)] for r in (shape.total, *shape.rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    out += [f"{r.destination}: {paused_words(r.paused, now)}" for r in shape.rows if r.paused]
    return "\n".join(line.rstrip() for line in out)


def message_data(row: MessageRow, timeline: list[RecipientTimeline]) -> dict[str, Any]:
    """A message with each recipient's state and attempts, as JSON data."""
    return {
        "id": row.id,
        "mail_from": row.mail_from,
        "subject": row.subject,
        "received_at": iso_time(row.received_at),
        "status": row.status,
        "recipients": [
            {
                "id": r.id,
                "address": r.address,
                "route": r.route,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt_at": iso_time(next_attempt(r.status, r.next_attempt_at)),
                "last_code": r.last_code,
                "last_enhanced": r.last_enhanced,
                "last_text": r.last_text,
                "history": [
                    {
                        "started_at": iso_time(a.started_at),
                        "duration": round(a.duration, 3),
                        "host": a.host,
                        "code": a.code,
                        "enhanced": a.enhanced,
                        "text": a.text,
                        "injected": a.injected,
                    }
                    for a in r.history
                ],
            }
            for r in timeline
        ],
    }


def render_message(row: MessageRow, timeline: list[RecipientTimeline], now: float) -> str:
    """A message, its recipients and their attempts, for people."""
    head = table(
        [
            ["message", row.id],
            ["from", row.mail_from or "<>"],
            ["subject", row.subject],
            ["received", f"{iso_time(row.received_at)} ({age(now - row.received_at)} ago)"],
            ["status", row.status],
        ]
    )
    recipients = table(
        [
            [
                r.id,
                r.status,
                r.route,
                r.attempts,
                next_try(r.next_attempt_at, now, r.status),
                r.address,
            ]
            for r in timeline
        ],
        header=["ID", "STATUS", "ROUTE", "TRIES", "NEXT TRY", "ADDRESS"],
    )
    attempts = [
        [r.address, iso_time(a.started_at), INJECTED if a.injected else a.host or "-",
         f"{a.duration:.1f}s", reply(a.code, a.enhanced, a.text)]
        for r in timeline
        for a in r.history
    ]  # fmt: skip
    parts = [head, "", recipients]
    if attempts:
        parts += ["", table(attempts, header=["RECIPIENT", "TIME", "HOST", "TOOK", "REPLY"])]
    return "\n".join(parts)
