"""X-Relay-Chaos: a message that asks for its own failure at the end of DATA.

    X-Relay-Chaos: data-end=452                      answer 452 (4.0.0) for this message
    X-Relay-Chaos: data-end=554 5.7.1 Go away        with an enhanced code and a text
    X-Relay-Chaos: delay=2                           wait 2 seconds, then carry on

Only with chaos on. Each header is one request; a message may carry several (delays add
up, the first reply wins). The headers are removed before a message is stored.
"""

from __future__ import annotations

import re

from relay.chaos.rules import Verdict

NAME = b"x-relay-chaos"
RULE = "header"
"""How a header's failure is named in replies and metrics."""
MAX_DELAY = 300.0
"""The longest delay a header may ask for, in seconds."""
_LINE = re.compile(rb"^x-relay-chaos[ \t]*:(.*(?:\r?\n[ \t].*)*)(?:\r?\n|\Z)", re.I | re.M)
_DATA_END = re.compile(r"data-end\s*=\s*([45]\d\d)(?:\s+([45]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?")
_DELAY = re.compile(r"delay\s*=\s*(\d+(?:\.\d+)?)")
USAGE = "data-end=CODE [ENHANCED] [TEXT] or delay=SECONDS"


class HeaderError(ValueError):
    """An X-Relay-Chaos header that cannot be read; the message says which."""


def _head(content: bytes) -> bytes:
    """The header section: up to the first empty line."""
    end = re.search(rb"\n\r?\n", content)
    return content if end is None else content[: end.start() + 1]


def requests(content: bytes) -> list[str]:
    """The values of the message's X-Relay-Chaos headers, unfolded (none: empty)."""
    head = _head(content)
    if NAME not in head.lower():
        return []
    return [" ".join(m.group(1).decode("utf-8", "replace").split()) for m in _LINE.finditer(head)]


def verdict(values: list[str]) -> Verdict | None:
    """What the requests ask for, together; raises HeaderError on one it cannot read."""
    delay = 0.0
    for value in values:
        if found := _DATA_END.fullmatch(value):
            code, enhanced, text = found.groups()
            return Verdict(
                "reply",
                int(code),
                enhanced or f"{code[0]}.0.0",
                text or "Chaos: failure asked for by the message's X-Relay-Chaos header",
                delay,
                RULE,
            )
        if found := _DELAY.fullmatch(value):
            delay += min(float(found.group(1)), MAX_DELAY)
            continue
        raise HeaderError(f"X-Relay-Chaos: cannot read {value!r} (expected {USAGE})")
    return Verdict("delay", delay=delay, rule=RULE) if delay else None


def strip(content: bytes) -> bytes:
    """`content` without its X-Relay-Chaos headers (the body untouched)."""
    head = _head(content)
    return _LINE.sub(b"", head) + content[len(head) :]
