"""Error groups: upstream replies that differ only in addresses, numbers and ids are one error.

"550 5.1.1 <bob@a.example>: user unknown" and "550 5.1.1 <eve@b.example>: user unknown" are
the same problem for an operator. The key of a reply is its code, its enhanced status code
and its text normalised: lower case, whitespace collapsed, each address replaced by
`<address>`, each word holding a digit (counts, ids, IPs, dates) by `#`, cut to KEY_LENGTH.

The normalised text is computed once, when an attempt's result is recorded, and kept in
`recipient.last_error_key`, so that the queue groups and filters by a plain column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_LENGTH = 160

# (pattern, replacement), applied in order to the lower-cased text.
_PATTERNS = (
    (re.compile(r"[ \t\r\n]+"), " "),
    (re.compile(r"<?[^ <>@]+@[^ <>]+>?"), "<address>"),
    (re.compile(r"[^ ]*[0-9][^ ]*"), "#"),
)


def normalize(text: str | None) -> str:
    """The grouping form of a reply text."""
    value = (text or "").lower()
    for pattern, replacement in _PATTERNS:
        value = pattern.sub(replacement, value)
    return value.strip(" ")[:KEY_LENGTH]


@dataclass(frozen=True)
class ErrorKey:
    """One error group: reply code, enhanced status code and normalised text."""

    code: int | None
    enhanced: str | None
    text: str

    def __str__(self) -> str:
        """The key as one string, for URLs and the API: "550|5.1.1|user unknown"."""
        code = "" if self.code is None else str(self.code)
        return f"{code}|{self.enhanced or ''}|{self.text}"

    @classmethod
    def parse(cls, value: str) -> ErrorKey:
        """The key a string made by `str()` stands for; ValueError when it is not one."""
        code, sep, rest = value.partition("|")
        enhanced, sep2, text = rest.partition("|")
        if not sep or not sep2 or (code and not code.isdigit()):
            raise ValueError(f"not an error group: {value!r}")
        return cls(int(code) if code else None, enhanced or None, text)
