"""Header values as people read them: RFC 2047 encoded words, RFC 2231 parameters and raw
8-bit bytes decoded through relay's charset table (charsets.py), never raising.

The standard library decodes encoded words and parameters with Python's strict codec
lookup: a `gb2312` word holding a GBK character loses it, an `iso-8859-8-i` word is not
decoded at all, and an `iso-2022-jp` parameter holding ① makes the parser raise. Here
each run of encoded words is decoded as the bodies are and handed to the standard
library's header parser as one UTF-8 word, so that the parser still does what it does
well (address lists, quoting, comments); parameters are read with the compat32 parser,
which leaves their bytes undecoded, and decoded here.
"""

from __future__ import annotations

import base64
import email.header
import re
from email import policy
from email.message import Message

from relay.mime import charsets

_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_WORD = r"=\?[^?\s]*\?[bBqQ]\?[^?]*\?="
_WORDS = re.compile(rf"{_WORD}(?:\s+{_WORD})*")
"""A run of encoded words: the white space between them is not part of the text."""


def clean(text: str) -> str:
    """Fold white space, drop control characters and undecoded bytes, for one-line display."""
    text = charsets.repair(text)
    return _WS.sub(" ", _CONTROL.sub("", text)).strip()


def _text_of(pieces: list[tuple[bytes | str, str | None]]) -> str:
    """What email.header.decode_header found, decoded through the charset table."""
    out: list[str] = []
    for chunk, label in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(charsets.decode(chunk, label).text)
    return "".join(out)


def decode_words(raw_value: str, fallback: str | None = None) -> str:
    """Decode raw 8-bit bytes and RFC 2047 encoded words in a header value, as far as can be
    (the value as text, its structure not read)."""
    value = charsets.repair(raw_value, fallback)
    try:
        return clean(_text_of(email.header.decode_header(value)))
    except Exception:  # noqa: BLE001 - broken encoded words: show them raw
        return clean(value)


def _as_utf8(match: re.Match[str]) -> str:
    """One run of encoded words as a single UTF-8 encoded word with the same text."""
    try:
        text = _text_of(email.header.decode_header(match[0]))
    except Exception:  # noqa: BLE001 - left for the parser to make what it can of
        return match[0]
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def utf8_words(value: str) -> str:
    """`value` with each run of encoded words re-encoded as one UTF-8 word, its bytes
    decoded as the charset table says (a character split across words survives)."""
    return _WORDS.sub(_as_utf8, value)


def value(name: str, raw_value: str, fallback: str | None = None) -> str:
    """The display form of one header: encoded words and 8-bit bytes decoded (8-bit bytes
    that are not UTF-8 as `fallback`, the message's charset), addresses as the standard
    library writes them, white space folded."""
    text = charsets.repair(raw_value, fallback)
    if "=?" in text:
        text = utf8_words(text)
    try:
        return clean(str(policy.default.header_fetch_parse(name, text)))
    except Exception:  # noqa: BLE001 - malformed headers must never break a page
        return decode_words(raw_value, fallback)


def header(msg: Message, name: str, fallback: str | None = None) -> str:
    """The decoded value of the first header `name` ("" when absent), even when malformed."""
    wanted = name.lower()
    for key, raw_value in msg.raw_items():
        if key.lower() == wanted:
            return value(key, str(raw_value), fallback)
    return ""


def decoded(msg: Message, fallback: str | None = None) -> list[tuple[str, str]]:
    """Every header of `msg` in order, decoded."""
    return [(key, value(key, str(raw), fallback)) for key, raw in msg.raw_items()]


def raw_block(raw: bytes) -> str:
    """The header block of a raw message as text, as received (folded lines kept)."""
    match = _HEADER_END.search(raw)
    block = raw[: match.start()] if match else raw
    return charsets.decode(block, "utf-8").text.replace("\r\n", "\n")


def param(msg: Message, name: str, field: str = "content-type") -> str | None:
    """Parameter `name` of header `field`, decoded: RFC 2231 (continuations joined, bytes
    in the declared charset), encoded words where a mailer put them, raw 8-bit bytes."""
    try:
        found = msg.get_param(name, header=field)
    except Exception:  # noqa: BLE001 - a broken parameter list reads as no parameter
        return None
    if found is None:
        return None
    if isinstance(found, tuple):
        label, _language, text = found
        try:  # the bytes, one character each (compat32 unquoted them as latin-1)
            data = str(text).encode("latin-1", errors="surrogateescape")
        except UnicodeEncodeError:
            return clean(str(text))
        return clean(charsets.decode(data, label or None).text)
    return decode_words(found) if "=?" in found else clean(found)


def filename(msg: Message) -> str:
    """The file name a part declares (Content-Disposition's, else Content-Type's `name`)."""
    return param(msg, "filename", "content-disposition") or param(msg, "name") or ""
