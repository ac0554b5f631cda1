"""Bytes → text under a declared charset, as well as can be done (pure).

Mail declares charsets loosely: `gb2312` bodies carry GBK characters, `iso-8859-1` means
windows-1252 in practice, some names are misspelt or unknown, and some bytes are simply not
in the charset declared. Every function here returns text and, when it had to guess or
replace, a warning in words; none raises.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass

from relay.mime import jis

# Labels whose real-world content is a superset charset (as browsers decode them).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "ascii",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift-jis": "shift_jis",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
    "windows-31j": "cp932",
    "iso-2022-jp-ms": "iso2022_jp",
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "csiso88598i": "iso-8859-8",
    "csiso88598e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "csiso88596i": "iso-8859-6",
    "csiso88596e": "iso-8859-6",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
_DECODERS: dict[str, Callable[[bytes, str], str]] = {
    "iso2022_jp": jis.decode,
    "iso2022_jp_ext": jis.decode,
}
"""Codecs decoded here rather than by Python (by the codec's name)."""
_SURROGATE = re.compile("[\ud800-\udfff]")

# Labels that carry no information about the bytes.
_UNKNOWN = {"", "unknown", "unknown-8bit", "x-unknown", "default", "charset", "8bit"}


@dataclass(frozen=True)
class Decoded:
    """Decoded text, with a warning when the bytes did not decode cleanly as declared."""

    text: str
    warning: str | None = None


def codec_for(label: str | None) -> str | None:
    """The Python codec name for a charset label, or None when it is unknown (an RFC 2231
    language suffix, as in `utf-8*en`, is ignored)."""
    name = (label or "").strip().strip("\"'").lower().partition("*")[0]
    if name in _UNKNOWN:
        return None
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _guess(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8, else windows-1252 (never fails)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def decode(data: bytes, label: str | None) -> Decoded:
    """Decode `data` declared as charset `label`; guess and warn when that is impossible."""
    codec = codec_for(label)
    if codec is None:
        text = _guess(data)
        if label and label.strip().lower() not in _UNKNOWN:
            return Decoded(text, f"unknown charset {label!r}: shown as UTF-8 or windows-1252")
        if not data.isascii():
            return Decoded(text, "8-bit text without a charset: shown as UTF-8 or windows-1252")
        return Decoded(text)
    if codec == "ascii" and not data.isascii():
        return Decoded(_guess(data), f"8-bit text declared as {label}: shown as UTF-8")
    try:
        return Decoded(_whole(_decode_as(data, codec)))
    except UnicodeDecodeError:
        pass
    except Exception:  # noqa: BLE001 - a few codecs raise other errors on bad input
        return Decoded(_guess(data), f"text is not valid {label}: shown as UTF-8")
    try:  # mail written in UTF-8 under a stale label: what the writer meant
        return Decoded(data.decode("utf-8"), f"text is not valid {label}: shown as UTF-8")
    except UnicodeDecodeError:
        pass
    return Decoded(
        _whole(_decode_as(data, codec, "replace")),
        f"text is not valid {label}: the bytes that are not were replaced by �",
    )


def _decode_as(data: bytes, codec: str, errors: str = "strict") -> str:
    """`data` decoded with `codec` (a name codec_for gave), ours where Python's falls short."""
    own = _DECODERS.get(codec)
    return own(data, errors) if own else data.decode(codec, errors)


def _whole(text: str) -> str:
    """`text` with lone surrogates (which UTF-7 and a few other codecs let through, and
    which no database nor UTF-8 page can hold) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def has_surrogates(text: str) -> bool:
    """True when `text` holds undecoded bytes (surrogate escapes from the email parser)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def repair(text: str, fallback: str | None = None) -> str:
    """Decode bytes left in `text` as surrogate escapes: UTF-8, else `fallback`, else 1252."""
    if not has_surrogates(text):
        return text
    data = text.encode("utf-8", errors="surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = codec_for(fallback)
    if codec is not None and codec not in ("utf-8", "ascii"):
        try:
            return _whole(_decode_as(data, codec))
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("cp1252", errors="replace")
