"""The small exception hierarchy of relay: every error carries the data needed to report it."""

from __future__ import annotations

import os
import socket


class RelayError(Exception):
    """Base of every error relay raises on purpose."""


class ConfigError(RelayError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""

    def __init__(self, source: str, key: str, expected: str, got: object | None = None) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        self.got = got
        detail = f"{source}: {key}: expected {expected}"
        if got is not None:
            detail += f", got {got!r}"
        super().__init__(detail)


class StoreError(RelayError):
    """The store could not complete an operation (the database failed or refused it)."""


class StartupError(RelayError):
    """Start-up cannot go on; the message is one sentence for the operator."""


class DeliveryError(RelayError):
    """An upstream refused or failed a delivery; `transient` says whether to retry."""

    def __init__(self, code: int, text: str, transient: bool, enhanced: str = "") -> None:
        self.code = code
        self.text = text
        self.transient = transient
        self.enhanced = enhanced
        super().__init__(f"{code} {enhanced} {text}".replace("  ", " "))


def cannot_listen(what: str, address: str, exc: OSError) -> StartupError:
    """The start-up error of a listener that cannot bind `address`, in the system's words
    ("Address already in use"): asyncio rewraps bind errors in a longer, lower-cased
    message, but keeps the errno."""
    if isinstance(exc, socket.gaierror):
        reason = exc.strerror or str(exc)
    else:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return StartupError(f"{what} cannot listen on {address}: {reason}")
