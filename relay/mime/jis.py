"""ISO-2022-JP as browsers and mail clients read it (pure).

Outlook and Windows write ISO-2022-JP with Microsoft's extensions (code page 50220): the
NEC special characters of JIS row 13 (circled digits, Roman numerals, ㈱) and the
NEC-selected IBM characters of rows 89 to 92, in the same JIS X 0208 escape. Browsers
decode them (the WHATWG Encoding Standard's jis0208 index has them); Python's iso2022_jp
codecs do not and fail on the first ①. This decoder lets the codec do what it can and
reads those rows through cp932, which holds the same characters in Shift_JIS form.
"""

from __future__ import annotations

import re

CODEC = "iso2022_jp_ext"
"""The standard codec: JIS X 0208, JIS Roman and half-width katakana (ESC ( I)."""
_DOUBLE = (b"$@", b"$B")
_ESCAPE = re.compile(rb"\x1b(\$[@B]|\([BJI])")
_EXTENDED_ROWS = frozenset({0x2D, 0x79, 0x7A, 0x7B, 0x7C})
"""Lead bytes of the rows CP50220 adds: NEC row 13, NEC-selected IBM rows 89 to 92."""
_PRINTABLE = range(0x21, 0x7F)


def decode(data: bytes, errors: str = "strict") -> str:
    """`data` as ISO-2022-JP with the CP50220 extensions; `errors` as for bytes.decode."""
    try:
        return data.decode(CODEC)
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    mode, pos = b"(B", 0
    for match in _ESCAPE.finditer(data):
        out.append(_segment(data[pos : match.start()], mode, errors))
        mode, pos = match[1], match.end()
    out.append(_segment(data[pos:], mode, errors))
    return "".join(out)


def _segment(chunk: bytes, mode: bytes, errors: str) -> str:
    """One run of bytes between escape sequences, in the character set `mode` selects."""
    if not chunk:
        return ""
    standard = b"\x1b" + mode + chunk
    if mode not in _DOUBLE:
        return standard.decode(CODEC, errors)
    try:
        return standard.decode(CODEC)
    except UnicodeDecodeError:
        return _double(chunk, errors)


def _double(chunk: bytes, errors: str) -> str:
    """Two-byte JIS text holding extension rows: those pairs through cp932, runs of the
    others through the standard codec."""
    out: list[str] = []
    run = bytearray()
    i = 0
    while i < len(chunk):
        lead = chunk[i]
        pair = chunk[i : i + 2]
        if lead in _EXTENDED_ROWS and len(pair) == 2 and pair[1] in _PRINTABLE:
            if run:
                out.append((b"\x1b$B" + run).decode(CODEC, errors))
                run.clear()
            out.append(shift_jis(lead, pair[1]).decode("cp932", errors))
            i += 2
        else:
            step = 2 if lead in _PRINTABLE and len(pair) == 2 else 1
            run += pair[:step]
            i += step
    if run:
        out.append((b"\x1b$B" + run).decode(CODEC, errors))
    return "".join(out)


def shift_jis(first: int, second: int) -> bytes:
    """The Shift_JIS bytes of the JIS X 0208 code point (`first`, `second`)."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    trail = second + (0x1F if second < 0x60 else 0x20) if first % 2 else second + 0x7E
    return bytes((lead, trail))
