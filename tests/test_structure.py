"""The structure scan finds the tree Python's email parser finds, on generated MIME trees
well formed and damaged (hypothesis), and a table of edge cases."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.mime import structure

LEAF_TYPES = ["text/plain", "text/html", "image/png", "application/pdf", None, "TEXT/Plain"]
SUBTYPES = ["mixed", "alternative", "related", "digest", "signed"]
BOUNDARIES = ["b1", "b2", "outer", "=_Part_1", "a b", "x-"]
LINE = st.sampled_from(
    [b"hello", b"", b"-- ", b"--not a boundary", b"--b1x", b"--outer--x", b"caf\xc3\xa9", b"\x00"]
)
MULTIPART = b'Content-Type: multipart/%s; boundary="%s"'
MULTIPART_FOLDED = b'content-type: MULTIPART/%s;\r\n\tboundary="%s"'


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME entity: headers, a blank line (or not), a body or parts."""
    kind = draw(
        st.sampled_from(["leaf", "leaf", "multipart", "message"] if depth < 3 else ["leaf"])
    )
    headers = [b"X-Depth: %d" % depth]
    if kind == "leaf":
        ctype = draw(st.sampled_from(LEAF_TYPES))
        if ctype:
            headers.append(b"Content-Type: " + ctype.encode())
        body = b"\r\n".join(draw(st.lists(LINE, max_size=4)))
    elif kind == "message":
        headers.append(b"Content-Type: message/rfc822")
        body = draw(entity(depth + 1))
    else:
        boundary = draw(st.sampled_from(BOUNDARIES)).encode()
        subtype = draw(st.sampled_from(SUBTYPES)).encode()
        spelling = draw(st.sampled_from([MULTIPART, MULTIPART_FOLDED]))
        headers.append(spelling % (subtype, boundary))
        body = draw(multipart_body(boundary, depth))
    separator = draw(st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\r\nnot a header\r\n"]))
    return b"\r\n".join(headers) + separator + body


@st.composite
def multipart_body(draw: st.DrawFn, boundary: bytes, depth: int) -> bytes:
    """Parts between boundary lines, with a preamble, doubled lines, trailing blanks, an
    epilogue or no closing line."""
    parts = draw(st.lists(entity(depth + 1), max_size=3))
    out = [b"".join(draw(st.lists(LINE, max_size=2)))]  # the preamble
    for part in parts:
        line = b"--" + boundary + draw(st.sampled_from([b"", b"", b"  ", b"\t"]))
        out.append(line + draw(st.sampled_from([b"", b"\r\n" + line])))
        out.append(part)
    ending = draw(st.sampled_from([b"--" + boundary + b"--", b"--" + boundary + b"-- ", b""]))
    out.append(ending + draw(st.sampled_from([b"", b"\r\nepilogue", b"\r\n--" + boundary])))
    return b"\r\n".join(out)


def email_view(raw: bytes) -> list[tuple[str, bytes | None]]:
    """Each part of email's parse in walk order: (content type, body bytes when it is not
    made of parts)."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    out: list[tuple[str, bytes | None]] = []
    for part in msg.walk():
        assert isinstance(part, Message)
        body = part.get_payload(decode=True)  # no transfer encoding here: the bytes
        out.append((part.get_content_type(), body if isinstance(body, bytes) else None))
    return out


def scan_view(raw: bytes) -> list[tuple[str, bytes | None]]:
    """The same from the structure scan."""
    tree = structure.scan(raw)
    return [(p.content_type, None if p.children else tree.body(p)) for p in tree.parts]


@settings(max_examples=400, deadline=None)
@given(entity(), st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_scan_finds_the_parts_email_finds(raw: bytes, line_end: bytes) -> None:
    """Same parts in the same order, each with the same type and the same body bytes
    (CRLF line ends, or bare LF)."""
    raw = raw.replace(b"\r\n", line_end)
    assert scan_view(raw) == email_view(raw)


MIXED = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
EDGE_CASES = {
    "no headers": b"\r\nbody\r\n",
    "headers only, no line end": b"Subject: x",
    "bare LF": b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nsecond\n--b--\n",
    "no boundary": b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n",
    "closed before it starts": MIXED + b"pre\r\n--b--\r\n",
    "part of headers only": MIXED + b"--b\r\nX: y\r\n--b--",
    "digest": b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n"
    b"\r\nhi\r\n--d--\r\n",
}


@pytest.mark.parametrize("raw", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_read_as_email_reads_them(raw: bytes) -> None:
    """Line ends, missing pieces, digests: as email reads them."""
    assert scan_view(raw) == email_view(raw)


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        (
            MIXED + b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x"
            b"\r\n\r\nAction: failed\r\n--b--\r\n",
            [
                ("multipart/mixed", None),
                ("message/delivery-status", b"Reporting-MTA: dns; x\r\n\r\nAction: failed"),
            ],
        ),
        (
            MIXED + b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64"
            b"\r\n\r\nU3ViamVjdDogeA==\r\n--b--\r\n",
            [("multipart/mixed", None), ("message/rfc822", b"U3ViamVjdDogeA==")],
        ),
    ],
    ids=["delivery status", "encoded message"],
)
def test_reports_and_encoded_messages_are_one_part(
    raw: bytes, parts: list[tuple[str, bytes | None]]
) -> None:
    """A delivery-status report's header blocks, and a message/rfc822 in base64, are one
    part each (email makes a part of each block, and parses base64 as headers)."""
    assert scan_view(raw) == parts
