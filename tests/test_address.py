"""Envelope address checks (pure): what may be a recipient, and why not, in words."""

from __future__ import annotations

import pytest

from relay import address


@pytest.mark.parametrize(
    "value",
    [
        "bob@example.com",
        "o'neil+tag@x-y.example",
        "a.b.c@sub.example.co",
        '"john doe"@example.com',
        "dev@localhost",
        "bob@[127.0.0.1]",
        "bob@[IPv6:2001:db8::1]",
        "用户@例子.广告",
        "x" * 64 + "@example.com",
    ],
)
def test_good_addresses_pass(value: str) -> None:
    """Addresses an MTA accepts in RCPT TO have no problem."""
    assert address.problem(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a@example.com\r\nRCPT TO:<x@evil.example>", "contains a line break"),
        ("a@example.com\n", "contains a line break"),
        ("a\x00b@example.com", "contains a control character"),
        ("bob", "is not an address like name@example.com"),
        ("@example.com", "is not an address like name@example.com"),
        ("bob@", "is not an address like name@example.com"),
        ("x" * 65 + "@example.com", "local part longer than 64 bytes"),
        ("a" * 60 + "@" + "b" * 200 + ".com", "is longer than 254 characters"),
        ("bo b@example.com", "local part (bo b) that is not allowed unquoted"),
        ("<bob@example.com>", "local part (<bob) that is not allowed unquoted"),
        (".bob@example.com", "local part (.bob)"),
        ("bob..x@example.com", "local part (bob..x)"),
        ("bob@-x.example", "domain (-x.example) that is not a host name"),
        ("bob@x..example", "domain (x..example) that is not a host name"),
        ("bob@exa_mple.com", "domain (exa_mple.com) that is not a host name"),
        ("bob@[999.1.1.1]", "address literal ([999.1.1.1]) that is not an IP address"),
    ],
)
def test_bad_addresses_say_why(value: str, reason: str) -> None:
    """Line breaks, control characters and malformed parts are named in the problem."""
    problem = address.problem(value)
    assert problem is not None and reason in problem
