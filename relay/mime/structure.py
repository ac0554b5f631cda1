"""The MIME structure of a raw message, found in its bytes: where each part's header block
and body lie, without decoding any body (pure).

Python's email parser builds an object per part, a string per line and a header object
per header: 0.2 s for a message of a thousand small attachments, and the whole message is
parsed again for every attachment downloaded. This scan finds the same tree by reading
only header blocks and the lines that start with "--", so that a view decodes just the
parts it shows and a download just the part it sends. It follows email.feedparser's
reading of damaged mail: headers end at the first line that is not a header, a boundary
line of an enclosing multipart ends every part inside it, consecutive boundary lines hold
no part, the line end before a boundary line belongs to the boundary, and a missing or
unfound boundary leaves the multipart's body as text.

Parts are numbered in depth-first order, "0" being the message itself (as email's
Message.walk() numbers them); a message/* part holds the message in its body as its one
child.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from functools import cached_property

MAX_DEPTH = 100
"""Parts nested deeper than this are kept as they are, not looked into."""
TOO_DEEP = "too many nested parts to follow: shown as text"
_IDENTITY = ("7bit", "8bit", "binary")

# Header lines as email.feedparser knows them (its headerRE), each with its line end.
_HEADER_LINES = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_EOL = re.compile(rb"\r\n|\r|\n")
_CONTENT_TYPE = re.compile(  # at a line start: after LF (^ in MULTILINE) or a bare CR
    rb"(?:^|(?<=\r))content-type:[ \t]*([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)",
    re.IGNORECASE | re.MULTILINE,
)
_PARSER = BytesHeaderParser(policy=policy.compat32)


@dataclass(eq=False)
class Part:
    """One entity: its header block at raw[start:body], its body at raw[body:end]."""

    part_id: str
    start: int
    body: int
    end: int
    content_type: str
    block: bytes
    children: list[Part] = field(default_factory=list)

    @cached_property
    def headers(self) -> Message:
        """The part's header block, parsed (compat32: values as in the bytes)."""
        return _PARSER.parsebytes(self.block)

    @property
    def maintype(self) -> str:
        """The part of the content type before the slash."""
        return self.content_type.partition("/")[0]

    @property
    def unparsed(self) -> bool:
        """A multipart whose parts could not be found: its body is shown as text."""
        return self.maintype == "multipart" and not self.children

    def walk(self) -> Iterator[Part]:
        """This part and every part inside it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Tree:
    """A message's parts (`parts[0]` is the message) and what was found wrong with it."""

    raw: bytes
    size: int = 0
    """The length of the message: what `raw` holds when the tree is bound to it."""
    parts: list[Part] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def root(self) -> Part:
        """The message itself."""
        return self.parts[0]

    def find(self, part_id: str) -> Part | None:
        """The part numbered `part_id`, or None."""
        if not part_id.isdigit() or int(part_id) >= len(self.parts):
            return None
        return self.parts[int(part_id)]

    def body(self, part: Part) -> bytes:
        """The body bytes of `part`, still in their transfer encoding."""
        return self.raw[part.body : part.end]

    def defect(self, words: str) -> None:
        """Note what is wrong (once), in words that follow "malformed message: "."""
        text = f"malformed message: {words}"
        if text not in self.defects:
            self.defects.append(text)


def scan(raw: bytes, flat: bool = False) -> Tree:
    """The tree of `raw`; with `flat`, only the message's headers and its body as one."""
    tree = Tree(raw, len(raw))
    _Scanner(tree).entity(0, len(raw), "text/plain", MAX_DEPTH + 1 if flat else 0)
    return tree


def content_type(block: bytes, default: str) -> str:
    """The content type a header block declares, lower case, as email's compat32 reads it:
    `default` when there is none, text/plain when it is not one type/subtype."""
    match = _CONTENT_TYPE.search(block)
    if match is None:
        return default
    value = match[1].decode("latin-1").partition(";")[0].strip().lower()
    return value if value.count("/") == 1 else "text/plain"


class _Scanner:
    """Finds the parts of one message into its Tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.raw = tree.raw

    def entity(self, start: int, stop: int, default: str, depth: int, trim: bool = False) -> Part:
        """The entity in raw[start:stop] and everything inside it; `trim`: the line end
        before `stop` belongs to a boundary line, not to this body."""
        body, missing = self._split(start, stop)
        block = self.raw[start:body]
        part = Part(
            str(len(self.tree.parts)), start, body, stop, content_type(block, default), block
        )
        self.tree.parts.append(part)
        if missing:
            self.tree.defect("missing header body separator")
        holds_message = part.maintype == "message" and (
            part.content_type != "message/delivery-status" and _encoding(part) in _IDENTITY
        )
        if (holds_message or part.maintype == "multipart") and depth > MAX_DEPTH:
            self.tree.defect(TOO_DEEP)
        elif part.maintype == "multipart":
            self.multipart(part, stop, depth + 1)
        elif holds_message:
            part.children.append(self.entity(body, stop, "text/plain", depth + 1, trim))
        elif trim and self.raw.endswith(b"\r\n", body, stop):
            part.end = stop - 2
        elif trim and stop > body and self.raw[stop - 1] in b"\r\n":
            part.end = stop - 1
        return part

    def _split(self, start: int, stop: int) -> tuple[int, bool]:
        """(where the body starts, whether a line that is not a header ended the headers)."""
        match = _HEADER_LINES.match(self.raw, start, stop)
        pos = match.end() if match else start  # it always matches, if only nothing
        if pos >= stop:
            return stop, False
        eol = _EOL.match(self.raw, pos, stop)
        return (eol.end(), False) if eol else (pos, True)

    def multipart(self, part: Part, stop: int, depth: int) -> None:
        """The parts of a multipart, between the lines of its boundary."""
        headers = part.headers
        boundary = headers.get_boundary()
        if boundary is None:
            self.tree.defect("no boundary in multipart")
            return
        if _encoding(part) not in _IDENTITY:
            self.tree.defect("invalid multipart content transfer encoding")
        dashed = b"--" + boundary.encode("utf-8", errors="surrogateescape")
        default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
        begun = closed = False
        child = -1  # where the next part starts (-1: still in the preamble)
        raw = self.raw
        for found in _boundary_line(dashed).finditer(raw, part.body, stop):
            line, after, close = found.start(), found.end(), found[1] is not None
            if line > part.body and raw[line - 1] not in b"\r\n":
                continue  # not at the start of a line
            if line == child:  # boundary lines in a row, closing or not: no part between
                child = after
                continue
            if child >= 0:
                part.children.append(self.entity(child, line, default, depth, trim=True))
            if close:
                closed = True
                part.end = line
                break
            begun = True
            child = after
        else:
            if child >= 0:
                part.children.append(self.entity(child, stop, default, depth, trim=True))
        if not begun:
            self.tree.defect("start boundary not found")
        elif not closed:
            self.tree.defect("close boundary not found")


@functools.lru_cache(maxsize=256)
def _boundary_line(dashed: bytes) -> re.Pattern[bytes]:
    """`dashed` (a boundary after two dashes), maybe two more dashes (the closing line),
    then spaces or tabs to the line end, as email.feedparser's boundary pattern reads a
    line (that it starts a line is for the caller to see: the pattern is faster without)."""
    return re.compile(re.escape(dashed) + rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)")


def _encoding(part: Part) -> str:
    return str(part.headers.get("content-transfer-encoding", "8bit")).strip().lower()
