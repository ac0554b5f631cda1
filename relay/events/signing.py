"""The signature of a webhook POST (pure): HMAC-SHA256 of "timestamp.body" with the
webhook's secret, hex, as `X-Relay-Signature: v1=<hex>`; docs/webhooks.md shows how a
receiver checks it."""

from __future__ import annotations

import hashlib
import hmac

EVENT_ID = "X-Relay-Event-ID"
TIMESTAMP = "X-Relay-Timestamp"
SIGNATURE = "X-Relay-Signature"
EVENT = "X-Relay-Event"
VERSION = "v1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header's value: "v1=" and the hex HMAC-SHA256 of timestamp, ".", body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def headers(event_id: str, event: str, timestamp: int, body: bytes, secret: str) -> dict[str, str]:
    """The headers of one POST: JSON, the event's ID and name, the time it was sent (Unix
    seconds), and its signature when the webhook has a secret."""
    stamp = str(timestamp)
    found = {
        "Content-Type": "application/json",
        EVENT_ID: event_id,
        EVENT: event,
        TIMESTAMP: stamp,
    }
    if secret:
        found[SIGNATURE] = signature(secret, stamp, body)
    return found


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether `header` is the signature of `body` sent at `timestamp` (for tests and as
    the docs' example does it)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)
