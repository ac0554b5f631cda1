"""Spam check: SpamAssassin's verdict on a message, from spamd, in Mailpit's sa-check shape.

relay speaks the SPAMC protocol (version 1.5, spamd's `PROTOCOL` file) itself, over one
asyncio connection per check: it sends

    REPORT SPAMC/1.5\\r\\n
    Content-length: <bytes>\\r\\n
    \\r\\n
    <the message>

and spamd answers `SPAMD/1.1 0 EX_OK`, a `Spam: True ; 1003.3 / 5.0` header (verdict,
score, threshold) and, as the body, the report whose table gives each rule that matched
with its points and description. (The aiospamc library was weighed and left: it leaves the
connection open when a check times out, and brings a command-line stack with it.)

`Spamd(address, timeout).check(message)` never raises: spamd not configured, down, slow
(past the timeout) or answering nonsense gives a clear `Error` and no rules.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TypedDict

from relay.config import ChecksConfig, split_hostport

REPORT_REQUEST = b"REPORT SPAMC/1.5\r\n"
REPLY_PROTOCOL = "SPAMD/"
EX_OK = 0
SPAM_HEADER = "spam"
LENGTH_HEADER = "content-length"
MAX_HEADER_LINES = 50
TABLE_RULE = re.compile(r"^-+ -+")
"""The line of dashes under the report table's column titles."""
RULE_LINE = re.compile(r"^ ?(-?\d+(?:\.\d+)?) +(\S+) +(.*)$")
"""One rule of the table: its points, name and description (" 0.6 MISSING_MID  Missing ...")."""


class SpamRule(TypedDict):
    """One SpamAssassin rule that matched, with its points."""

    Score: float
    Name: str
    Description: str


class SpamCheckResponse(TypedDict):
    """The whole answer, as Mailpit's sa-check gives it."""

    IsSpam: bool
    Score: float
    Error: str
    Rules: list[SpamRule]


class SpamdError(Exception):
    """spamd answered something other than a report; the message says what."""


def _failed(error: str) -> SpamCheckResponse:
    return SpamCheckResponse(IsSpam=False, Score=0.0, Error=error, Rules=[])


def parse_rules(report: str) -> list[SpamRule]:
    """The rules of a report's table, each description joined from its wrapped lines."""
    rules: list[SpamRule] = []
    in_table = False
    for line in report.splitlines():
        if not in_table:
            in_table = bool(TABLE_RULE.match(line))
            continue
        if not line.strip():
            break
        match = RULE_LINE.match(line)
        if match:
            score, name, description = match.groups()
            rules.append(SpamRule(Score=float(score), Name=name, Description=description.strip()))
        elif rules:  # a wrapped description goes on, indented under its column
            rules[-1]["Description"] = f"{rules[-1]['Description']} {line.strip()}".strip()
    return rules


def _verdict(value: str) -> tuple[bool, float]:
    """'True ; 1003.3 / 5.0' → (True, 1003.3)."""
    verdict, _, numbers = value.partition(";")
    score = numbers.partition("/")[0].strip()
    try:
        return verdict.strip().lower() in ("true", "yes"), float(score)
    except ValueError:
        raise SpamdError(
            f"a Spam header that is not 'True ; SCORE / THRESHOLD': {value!r}"
        ) from None


async def _read_reply(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    status = (await reader.readline()).decode("latin-1").strip()
    parts = status.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(REPLY_PROTOCOL) or not parts[1].isdigit():
        raise SpamdError(f"not a spamd reply: {status[:80]!r}")
    if int(parts[1]) != EX_OK:
        raise SpamdError(f"spamd refused the check: {status}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get(LENGTH_HEADER, "")
    body = await (reader.readexactly(int(length)) if length.isdigit() else reader.read())
    return headers, body


async def _report(host: str, port: int, message: bytes) -> SpamCheckResponse:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(REPORT_REQUEST + b"Content-length: %d\r\n\r\n" % len(message) + message)
        if writer.can_write_eof():
            writer.write_eof()
        await writer.drain()
        headers, body = await _read_reply(reader)
    except asyncio.IncompleteReadError:
        raise SpamdError("spamd closed the connection before its report ended") from None
    except ValueError:  # a line longer than the stream's limit
        raise SpamdError("spamd's reply has a line too long to be a header") from None
    finally:
        writer.transport.abort()  # at once, even with unsent bytes: a timeout must not wait
    if SPAM_HEADER not in headers:
        raise SpamdError("spamd's reply has no Spam header")
    spam, score = _verdict(headers[SPAM_HEADER])
    rules = parse_rules(body.decode("utf-8", "replace"))
    return SpamCheckResponse(IsSpam=spam, Score=round(score, 1), Error="", Rules=rules)


@dataclass(frozen=True)
class Spamd:
    """SpamAssassin's spamd at "HOST:PORT" (empty: none), asked with a time limit."""

    address: str = ""
    timeout: float = 10.0

    @classmethod
    def from_config(cls, checks: ChecksConfig) -> Spamd:
        """The spamd that the [checks] section names."""
        return cls(checks.spamassassin, checks.spamassassin_timeout)

    async def check(self, message: bytes) -> SpamCheckResponse:
        """spamd's report on `message` (raw RFC 5322 bytes), in Mailpit's sa-check shape.

        `IsSpam` is spamd's verdict against its own threshold (5.0 unless configured). Never
        raises: no address, a spamd that is down, slower than `timeout` seconds or answering
        nonsense gives `Error` and no rules.
        """
        address = self.address
        if not address:
            return _failed("no spamd is configured ([checks] spamassassin)")
        try:
            host, port = split_hostport(address)
        except ValueError:
            return _failed(f"the spamd address is not HOST:PORT: {address!r}")
        try:
            async with asyncio.timeout(self.timeout):
                return await _report(host, port, message)
        except TimeoutError:
            return _failed(f"spamd at {address} did not answer within {self.timeout:g} s")
        except OSError as exc:
            return _failed(f"spamd at {address} cannot be reached: {exc.strerror or exc}")
        except SpamdError as exc:
            return _failed(f"spamd at {address}: {exc}")
