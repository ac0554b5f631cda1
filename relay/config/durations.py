"""Durations written for people ("7d", "12h", "30m", "45s", or plain seconds) → seconds (pure)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number with an optional unit s, m, h, d or w ("7d", "90", "1.5h").

    Raises ValueError when `text` is not such a duration.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 7d, 12h, 30m, 45s or 3600)")
    number, unit = match.groups()
    return float(number) * UNITS[unit.lower() or "s"]


def check_duration(text: str) -> str | None:
    """A config check: None when `text` is empty or a duration, else what was expected."""
    if not text:
        return None
    try:
        parse_duration(text)
    except ValueError:
        return 'a duration such as "7d", "12h", "30m", "45s" or "3600" (seconds), or ""'
    return None
