"""One mail transaction with each of three real SMTP clients (smtplib, aiosmtplib, swaks),
reporting where it stopped: the stage whose reply was an error, with its code (None: the
server closed without a reply), or "done" with the 250 of the end of data."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib
import pytest

HOST = "127.0.0.1"
DONE = "done"
MESSAGE = b"From: app@example.com\r\nTo: user@example.org\r\nSubject: chaos\r\n\r\nbody\r\n"


@dataclass(frozen=True)
class Outcome:
    """Where a transaction stopped: the stage, its reply code (None: hung up), the text."""

    stage: str
    code: int | None
    text: str = ""


@dataclass(frozen=True)
class Attempt:
    """What to send: to which port, as whom (AUTH PLAIN when `user` is set)."""

    port: int
    sender: str = "app@example.com"
    recipients: tuple[str, ...] = ("user@example.org",)
    content: bytes = MESSAGE
    user: str | None = None
    password: str | None = None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def with_smtplib(attempt: Attempt) -> Outcome:
    """The transaction with smtplib, DATA and the end of data told apart."""
    stage = "connect"
    try:
        client = smtplib.SMTP(HOST, attempt.port, timeout=15)
    except smtplib.SMTPConnectError as exc:
        return Outcome(stage, exc.smtp_code, _text(exc.smtp_error))
    except smtplib.SMTPServerDisconnected:
        return Outcome(stage, None)
    try:
        stage = "helo"
        steps: list[tuple[str, Callable[[], tuple[int, bytes]]]] = [("helo", client.ehlo)]
        if attempt.user is not None:
            steps.append(("auth", lambda: _login(client, attempt)))
        steps.append(("mail", lambda: client.mail(attempt.sender)))
        steps += [("rcpt", lambda r=r: client.rcpt(r)) for r in attempt.recipients]  # type: ignore[misc]
        steps.append(("data", lambda: client.docmd("DATA")))
        for stage, step in steps:
            code, reply = step()
            if code >= 400:
                return Outcome(stage, code, _text(reply))
        stage = "data-end"
        client.send(smtplib.quotedata(attempt.content.decode()).encode() + b"\r\n.\r\n")
        code, reply = client.getreply()
        return Outcome(DONE if code == 250 else stage, code, _text(reply))
    except smtplib.SMTPServerDisconnected:
        return Outcome(stage, None)
    finally:
        client.close()


def _login(client: smtplib.SMTP, attempt: Attempt) -> tuple[int, bytes]:
    try:
        return client.login(attempt.user or "", attempt.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        return exc.smtp_code, exc.smtp_error


def with_aiosmtplib(attempt: Attempt) -> Outcome:
    """The transaction with aiosmtplib (its DATA errors told apart by their text)."""
    return asyncio.run(_aiosmtplib(attempt))


async def _aiosmtplib(attempt: Attempt) -> Outcome:
    client = aiosmtplib.SMTP(hostname=HOST, port=attempt.port, timeout=15, start_tls=False)
    stage = "connect"
    try:
        await client.connect()
        stage = "helo"
        await client.ehlo()
        if attempt.user is not None:
            stage = "auth"
            await client.auth_plain(attempt.user, attempt.password or "")
        stage = "mail"
        await client.mail(attempt.sender)
        stage = "rcpt"
        for rcpt in attempt.recipients:
            await client.rcpt(rcpt)
        # DATA, then the message and its end on the protocol: data() would not tell a
        # hang-up after DATA from one after the final dot.
        stage = "data"
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            return Outcome(stage, reply.code, reply.message)
        stage = "data-end"
        assert client.protocol is not None
        client.protocol.write(attempt.content + b".\r\n")
        reply = await client.protocol.read_response(timeout=15)
        return Outcome(DONE if reply.code == 250 else stage, reply.code, reply.message)
    except aiosmtplib.SMTPServerDisconnected:
        return Outcome(stage, None)
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome(stage, exc.code, exc.message)
    except aiosmtplib.SMTPConnectError as exc:  # a hang-up before the greeting
        if not isinstance(exc.__cause__, aiosmtplib.SMTPServerDisconnected):
            raise
        return Outcome(stage, None)
    finally:
        client.close()


_SWAKS_STAGES = {"EHLO": "helo", "HELO": "helo", "AUTH": "auth", "MAIL": "mail"}
_SWAKS_STAGES.update({"RCPT": "rcpt", "DATA": "data", ".": "data-end"})


def with_swaks(attempt: Attempt) -> Outcome:
    """The transaction with swaks, read from its transcript."""
    swaks = shutil.which("swaks")
    if swaks is None:
        if os.environ.get("CI"):
            pytest.fail("swaks is not installed: .ci/run must install it")
        pytest.skip("swaks is not installed (apt-get install swaks)")
    command = [swaks, "--server", HOST, "--port", str(attempt.port), "--ehlo", "swaks.example"]
    command += ["--from", attempt.sender, "--to", ",".join(attempt.recipients)]
    command += ["--data", "-", "--timeout", "15"]
    if attempt.user is not None:
        command += ["--auth", "PLAIN", "--auth-user", attempt.user]
        command += ["--auth-password", attempt.password or ""]
    result = subprocess.run(
        command,
        input=attempt.content,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    return _swaks_outcome(result.stdout.decode("utf-8", "replace"))


def _swaks_outcome(transcript: str) -> Outcome:
    """The outcome a swaks transcript tells: its first error reply, or a hang-up."""
    stage = "connect"
    for line in transcript.splitlines():
        if line.startswith(" -> "):
            word = line[4:].split(" ", 1)[0].split(":", 1)[0].upper()
            stage = _SWAKS_STAGES.get(word, stage)
        elif line.startswith("<** "):
            code, _, text = line[4:].partition(" ")
            return Outcome(stage, int(code), text)
        elif line.startswith("*** ") and "closed" in line.lower():
            return Outcome(stage, None)
        elif line.startswith("<-  250 ") and stage == "data-end":
            return Outcome(DONE, 250, line[8:])
    raise AssertionError(f"swaks transcript without an outcome:\n{transcript}")


CLIENTS = {"smtplib": with_smtplib, "aiosmtplib": with_aiosmtplib, "swaks": with_swaks}
