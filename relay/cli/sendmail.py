"""`relay sendmail`: the sendmail command line, submitting to a running relay over SMTP.

    relay sendmail [-t] [-i|-oi] [-f SENDER] [-F NAME] [--smtp HOST:PORT] [RECIPIENT...]

The message is read from stdin. Without -i (or -oi) a line holding a single "." ends it,
as with sendmail. -t adds the To, Cc and Bcc addresses of the message to the recipients
and removes its Bcc header. From, Date and Message-ID are added when missing. Other
sendmail options (-o..., -B, -N, -R, -V, -v, -bm) are accepted and ignored. This is a
command, not part of the server: it uses the blocking smtplib on purpose.

Exit codes are sendmail's (sysexits.h), so that programs that call sendmail understand them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import smtplib
import socket
import sys
import time
from email import policy
from email.parser import BytesHeaderParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from typing import Any

from relay.config import split_hostport

EX_OK = 0  # the relay accepted the message for every recipient
EX_USAGE = 64  # bad arguments, or no recipient at all
EX_DATAERR = 65  # the message could not be read
EX_NOUSER = 67  # the relay refused some recipients (the others got the message)
EX_UNAVAILABLE = 69  # the relay refused the message for good (5xx)
EX_TEMPFAIL = 75  # the relay cannot be reached, or refused for now (4xx): try again later

DEFAULT_SMTP = "127.0.0.1:1025"
SMTP_ENV = "RELAY_SENDMAIL_SMTP"
TIMEOUT = 60.0
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BCC_LINE = re.compile(rb"^bcc:.*(?:\r?\n[ \t].*)*(?:\r?\n|$)", re.IGNORECASE | re.MULTILINE)


class SendFailure(Exception):
    """Sending failed: `code` is the exit code, the message says why."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def read_message(stream: Any, ignore_dots: bool) -> bytes:
    """The message on `stream`; without `ignore_dots` a line of a single "." ends it."""
    data: bytes = stream.read()
    if ignore_dots:
        return data
    match = re.search(rb"^\.\r?$", data, re.MULTILINE)
    return data[: match.start()] if match else data


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header block, the rest from the line end before the blank line on)."""
    match = _HEADER_END.search(data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.start() :]


def header_recipients(head: bytes) -> list[str]:
    """The addresses in the To, Cc and Bcc headers."""
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    values = [str(v) for name in ("To", "Cc", "Bcc") for v in parsed.get_all(name, [])]
    return [addr for _name, addr in getaddresses(values) if addr]


def complete(data: bytes, sender: str, full_name: str | None, strip_bcc: bool) -> bytes:
    """`data` with From, Date and Message-ID added when missing (and Bcc removed)."""
    head, rest = split_message(data)
    if strip_bcc:
        head = _BCC_LINE.sub(b"", head)
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    added = []
    if parsed["From"] is None:
        added.append(f"From: {formataddr((full_name or '', sender))}")
    if parsed["Date"] is None:
        added.append(f"Date: {formatdate(time.time(), localtime=True)}")
    if parsed["Message-ID"] is None:
        added.append(f"Message-ID: {make_msgid(domain=socket.gethostname() or 'localhost')}")
    prefix = "".join(f"{line}\r\n" for line in added).encode("utf-8")
    if not rest:
        rest = b"\r\n\r\n" if head.strip() else b""
    return _LINE_END.sub(b"\r\n", prefix + head.rstrip(b"\r\n") + rest)


def submit(
    address: str, sender: str, recipients: list[str], data: bytes
) -> tuple[str, dict[str, str]]:
    """Send over SMTP; return (the relay's 250 text, refused recipients with the reply)."""
    host, port = split_hostport(address)
    try:
        client = smtplib.SMTP(host, port, timeout=TIMEOUT)
    except OSError as exc:
        raise SendFailure(EX_TEMPFAIL, f"cannot reach the relay at {address}: {exc}") from None
    try:
        client.ehlo_or_helo_if_needed()
        utf8 = not all(a.isascii() for a in [sender, *recipients])
        options = ["SMTPUTF8"] if utf8 and client.has_extn("smtputf8") else []
        if not data.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        code, reply = client.mail(sender, options)
        if code != 250:
            raise _refusal(code, reply, "the sender")
        refused: dict[str, str] = {}
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = f"{code} {reply.decode(errors='replace')}"
        if len(refused) == len(recipients):
            raise SendFailure(EX_NOUSER, "every recipient was refused: " + _listed(refused))
        code, reply = client.data(data)
        if code != 250:
            raise _refusal(code, reply, "the message")
        return reply.decode(errors="replace"), refused
    except smtplib.SMTPException as exc:
        raise SendFailure(EX_TEMPFAIL, f"SMTP conversation failed: {exc}") from None
    except OSError as exc:
        raise SendFailure(EX_TEMPFAIL, f"connection to the relay failed: {exc}") from None
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _refusal(code: int, reply: bytes, what: str) -> SendFailure:
    exit_code = EX_TEMPFAIL if 400 <= code < 500 else EX_UNAVAILABLE
    text = reply.decode(errors="replace")
    return SendFailure(exit_code, f"the relay refused {what}: {code} {text}")


def _listed(refused: dict[str, str]) -> str:
    return "; ".join(f"{a}: {why}" for a, why in refused.items())


def cmd_sendmail(args: argparse.Namespace) -> int:
    """Read the message, send it, and exit with a sysexits code."""
    ignore_dots = args.i or "i" in args.o
    try:
        data = read_message(sys.stdin.buffer, ignore_dots)
    except OSError as exc:
        print(f"sendmail: cannot read the message: {exc}", file=sys.stderr)
        return EX_DATAERR
    head, _rest = split_message(data)
    recipients = list(args.recipients)
    if args.t:
        recipients += header_recipients(head)
    if not recipients:
        print(
            "sendmail: no recipients (give addresses, or -t to read them from the message)",
            file=sys.stderr,
        )
        return EX_USAGE
    sender = args.f or f"{getpass.getuser()}@{socket.gethostname() or 'localhost'}"
    message = complete(data, sender, args.F, strip_bcc=args.t)
    address = args.smtp or os.environ.get(SMTP_ENV) or DEFAULT_SMTP
    try:
        reply, refused = submit(address, sender, recipients, message)
    except SendFailure as exc:
        print(f"sendmail: {exc}", file=sys.stderr)
        return exc.code
    except ValueError:
        print(f"sendmail: --smtp needs HOST:PORT, got {address!r}", file=sys.stderr)
        return EX_USAGE
    if args.json:
        print(json.dumps({"reply": reply, "refused": refused}))
    if refused:
        print(
            f"sendmail: refused (the others got the message): {_listed(refused)}", file=sys.stderr
        )
        return EX_NOUSER
    return EX_OK


def add_parser(sub: Any) -> None:
    """Register `relay sendmail`."""
    parser = sub.add_parser(
        "sendmail",
        help="send the message on stdin through a running relay, like sendmail"
        " (exit codes of sysexits.h: 0 sent, 64 usage, 67 recipients refused,"
        " 69 refused, 75 try again later)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipients", nargs="*", metavar="RECIPIENT")
    parser.add_argument("-t", action="store_true", help="also send to To, Cc and Bcc; drop Bcc")
    parser.add_argument("-i", action="store_true", help='a line of "." does not end the message')
    parser.add_argument("-f", metavar="SENDER", help="envelope sender (default: USER@HOST)")
    parser.add_argument("-F", metavar="NAME", help="full name for a From header that is added")
    parser.add_argument(
        "-o",
        action="append",
        default=[],
        metavar="OPTION",
        help="sendmail option; -oi is -i, the others are ignored",
    )
    for ignored in ("-B", "-N", "-R", "-V", "-b", "-O"):
        parser.add_argument(ignored, metavar="X", help=argparse.SUPPRESS)
    parser.add_argument("-v", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--smtp",
        metavar="HOST:PORT",
        help=f"the relay's SMTP address (default: ${SMTP_ENV}, else {DEFAULT_SMTP})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the relay's reply and refused recipients as JSON"
    )
    parser.set_defaults(func=cmd_sendmail)
