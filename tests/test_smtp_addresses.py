"""The session's short way through MAIL FROM/RCPT TO addresses gives aiosmtpd's answers."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from relay.smtp.session import Session

ARGS = [
    "<a@example.com>",
    "<a@example.com> SIZE=5120",
    " <a.b+c@ex-ample.co.uk>  BODY=8BITMIME",
    "<a@b>\tX=1 ",
    "<>",
    "a@example.com",
    "<a@[127.0.0.1]>",
    '<"quoted x"@example.com>',
    "<a@b> (comment) SIZE=1",
    "<a..b@x>",
    "<.a@b>",
    "<a@b.>",
    "<@route:a@b>",
    "<a @b>",
    "<a@b",
    "junk",
    "<ü@example.com> SMTPUTF8",
    "",
]


@pytest.mark.parametrize("limit", [0, 3])
@pytest.mark.parametrize("arg", ARGS)
def test_addresses_parse_as_aiosmtpd_parses_them(arg: str, limit: int) -> None:
    """Address and parameters come out as aiosmtpd's parser gives them, local-part limit
    included, whether the short way or the full parse is taken."""
    ours = Session.__new__(Session)
    theirs = SMTP.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = limit
    assert ours._getaddr(arg) == SMTP._getaddr(theirs, arg)
