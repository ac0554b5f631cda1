"""The path of MAIL FROM: and RCPT TO: (`<local@domain> PARAMS`) as aiosmtpd parses it,
with a short way for the usual `<local@domain>`: aiosmtpd's own defines a class on every
call, which costs more than the parse."""

from __future__ import annotations

import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# "<local@domain> PARAMS" with dot-atoms only: email's parser gives the same address, and
# the rest without the blanks before it (a comment there is left to the parser).
_SIMPLE_PATH = re.compile(rf"[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>[ \t]*(.*)", re.DOTALL)


def parse_path(arg: str, local_part_limit: int) -> tuple[str | None, str | None]:
    """The address and the rest of the line; (None, None) when it cannot be read or its
    local part is longer than `local_part_limit` (0: no limit); ("", "") for no argument."""
    if not arg:
        return "", ""
    simple = _SIMPLE_PATH.fullmatch(arg)
    if simple is not None and not simple[2].startswith("("):
        address, rest = simple[1], simple[2]
    else:
        try:
            if arg.lstrip().startswith("<"):
                angle, rest = get_angle_addr(arg)
                address = str(angle.addr_spec)
            else:
                spec, rest = get_addr_spec(arg)
                address = str(spec.addr_spec)
        except HeaderParseError:
            return None, None
    local = address.rpartition("@")[0]
    if local_part_limit and len(local) > local_part_limit:
        return None, None
    return address, rest
