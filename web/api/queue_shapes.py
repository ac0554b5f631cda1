"""The queue and a message's deliveries as relay's own API shapes them (PascalCase fields,
as in Mailpit's objects; times as RFC 3339 UTC). Pure functions; the routes fetch."""

from __future__ import annotations

from relay.status import actions_for, next_attempt
from relay.store import AttemptRow, Group, QueueRow, QueueSummary, RecipientTimeline
from web.api.shapes import JSON, timestamp


def maybe_time(epoch: float | None) -> str | None:
    """An epoch as RFC 3339, or None."""
    return None if epoch is None else timestamp(epoch)


def queue_recipient(row: QueueRow) -> JSON:
    """One recipient of the queue with its message's sender and subject."""
    return {
        "ID": row.id,
        "Message": row.message_id,
        "Address": row.address,
        "Route": row.route,
        "Destination": row.destination,
        "Status": row.status,
        "Attempts": row.attempts,
        "NextAttempt": maybe_time(next_attempt(row.status, row.next_attempt_at)),
        "LastCode": row.last_code,
        "LastEnhanced": row.last_enhanced,
        "LastText": row.last_text,
        "ErrorGroup": str(row.error),
        "Updated": timestamp(row.updated_at),
        "Received": timestamp(row.received_at),
        "MailFrom": row.mail_from,
        "Subject": row.subject,
        "Actions": actions_for(row.status),
    }


def summary(queue: QueueSummary) -> JSON:
    """Recipients per queue state."""
    return {
        "queued": queue.queued,
        "sending": queue.sending,
        "deferred": queue.deferred,
        "failed": queue.failed,
        "held": queue.held,
    }


def group(found: Group) -> JSON:
    """A destination or error group: its key, counts by state, oldest message, next retry."""
    return {
        "Key": found.key,
        "Count": found.count,
        "Deferred": found.deferred,
        "Failed": found.failed,
        "Held": found.held,
        "Oldest": timestamp(found.oldest),
        "NextAttempt": maybe_time(found.next_attempt_at),
        "Code": found.code,
        "Enhanced": found.enhanced,
        "Sample": found.sample,
    }


def attempt(row: AttemptRow) -> JSON:
    """One delivery attempt."""
    return {
        "Time": timestamp(row.started_at),
        "Duration": round(row.duration, 3),
        "Host": row.host,
        "Code": row.code,
        "Enhanced": row.enhanced,
        "Text": row.text,
    }


def delivery(rcpt: RecipientTimeline) -> JSON:
    """One recipient of a message: its state, route, last reply and every attempt."""
    return {
        "ID": rcpt.id,
        "Address": rcpt.address,
        "Route": rcpt.route,
        "Status": rcpt.status,
        "Attempts": rcpt.attempts,
        "NextAttempt": maybe_time(next_attempt(rcpt.status, rcpt.next_attempt_at)),
        "LastCode": rcpt.last_code,
        "LastEnhanced": rcpt.last_enhanced,
        "LastText": rcpt.last_text,
        "Actions": actions_for(rcpt.status),
        "History": [attempt(a) for a in rcpt.history],
    }
