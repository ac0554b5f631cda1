"""PIPELINING to upstreams (RFC 2920): RSET, MAIL, the RCPTs and DATA in one write, the
message in the next, and a connection that stays usable whatever part of a group failed.

The upstream here is raw and strict: it reads a whole group of commands, up to DATA,
before it answers any of them. A client that waits for each reply before its next command
would wait forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from relay.delivery.transaction import command
from relay.status import Status
from relay.store import Store
from tests.queueing import (
    new_message,
    recipients,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"
NO_RECIPIENTS = "554 5.5.1 No valid recipients"


@dataclass
class Strict:
    """What the strict upstream saw, and how it answers."""

    mail_reply: str = "250 2.1.0 OK"
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_without_recipients: str = NO_RECIPIENTS
    connections: int = 0
    groups: list[list[str]] = field(default_factory=list)
    """Each group of commands as it was read: the verbs (and MAIL's and RCPT's address)."""
    messages: list[bytes] = field(default_factory=list)

    def rcpt_reply(self, line: str) -> str:
        """The scripted reply to a RCPT line (250 when not scripted)."""
        address = line.partition("<")[2].partition(">")[0]
        return self.rcpt_replies.get(address, "250 2.1.5 OK")


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    lines: list[bytes] = []
    while (line := await reader.readline()) not in (b".\r\n", b""):
        lines.append(line)
    return b"".join(lines)


@asynccontextmanager
async def strict_upstream(strict: Strict) -> AsyncIterator[int]:
    """Serve `strict` on a loopback port (yielded) until the block ends."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        strict.connections += 1
        writer.write(b"220 strict.example ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-strict.example\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
        while True:
            group: list[str] = []
            while not group or group[-1] not in ("DATA", "QUIT"):
                line = await reader.readline()
                if not line:
                    writer.close()
                    return
                group.append(line.decode().strip())
            strict.groups.append([c if c[:4] in ("MAIL", "RCPT") else c[:4] for c in group])
            answers, accepted = [], 0
            for cmd in group:
                if cmd.startswith("MAIL"):
                    answers.append(strict.mail_reply)
                elif cmd.startswith("RCPT"):
                    answer = strict.rcpt_reply(cmd)
                    accepted += strict.mail_reply.startswith("2") and answer.startswith("2")
                    answers.append(answer)
                elif cmd == "DATA":
                    answers.append("354 go ahead" if accepted else strict.data_without_recipients)
                elif cmd == "QUIT":
                    answers.append("221 bye")
                else:
                    answers.append("250 2.0.0 OK")
            writer.write("".join(f"{a}\r\n" for a in answers).encode())
            if group[-1] == "QUIT":
                writer.close()
                return
            if answers[-1].startswith("354"):
                strict.messages.append(await _read_data(reader))
                writer.write(b"250 2.0.0 queued\r\n")

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _raw(subject: str) -> bytes:
    return f"Subject: {subject}\r\n\r\n.a leading dot\r\n".encode()


async def _send(store: Store, to: list[str], subject: str) -> str:
    new = new_message(to, raw=_raw(subject))
    await store.add_message(new)
    return new.id


async def test_each_transaction_is_one_group_then_the_message(db_url: str) -> None:
    """Against a server that answers nothing before DATA, every message is delivered over
    one connection: the first group is MAIL, RCPTs, DATA; the later ones start with RSET;
    the message (dots stuffed) follows the 354; QUIT when the worker stops."""
    strict = Strict()
    async with strict_upstream(strict) as port:
        config = relay_config(
            db_url, {"smarthost": upstream_at(port, max_connections=1, command_timeout=5)}
        )
        async with running_worker(config) as (store, _):
            for n in range(3):
                sent = await _send(store, [A, B], f"n{n}")
                await wait_for_status(store, sent, {A: Status.DELIVERED, B: Status.DELIVERED})
    group = [f"MAIL FROM:<sender@example.com> SIZE={len(_raw('n0'))}"]
    group += [f"RCPT TO:<{A}>", f"RCPT TO:<{B}>", "DATA"]
    assert strict.groups == [group, ["RSET", *group], ["RSET", *group], ["QUIT"]]
    assert strict.connections == 1
    assert strict.messages[0] == b"Subject: n0\r\n\r\n..a leading dot\r\n"


@pytest.mark.parametrize("data_reply", [NO_RECIPIENTS, "354 go ahead anyway"])
async def test_every_recipient_refused_leaves_the_connection_usable(
    db_url: str, data_reply: str
) -> None:
    """When every RCPT of a group is refused, each recipient keeps its own refusal, DATA's
    answer is read (a 354 all the same gets just the final dot, RFC 2920), and the next
    message goes out on the same connection."""
    strict = Strict(
        rcpt_replies={A: "550 5.1.1 no such user", B: "450 4.2.1 mailbox busy"},
        data_without_recipients=data_reply,
    )
    async with strict_upstream(strict) as port:
        config = relay_config(
            db_url, {"smarthost": upstream_at(port, max_connections=1, command_timeout=5)}
        )
        async with running_worker(config) as (store, _):
            refused = await _send(store, [A, B], "refused")
            rows = await wait_for_status(store, refused, {A: Status.FAILED, B: Status.DEFERRED})
            accepted = await _send(store, [C], "accepted")
            await wait_for_status(store, accepted, {C: Status.DELIVERED})
    assert (rows[A].last_code, rows[A].last_text) == (550, "no such user")
    assert (rows[B].last_code, rows[B].last_text) == (450, "mailbox busy")
    assert strict.connections == 1
    empty = [b""] if data_reply.startswith("354") else []
    assert strict.messages == [*empty, b"Subject: accepted\r\n\r\n..a leading dot\r\n"]


async def test_a_refused_sender_answers_for_every_recipient(db_url: str) -> None:
    """MAIL refused: every recipient gets that reply, the group's other replies are read,
    and the connection carries the next message once MAIL is accepted again."""
    strict = Strict(mail_reply="550 5.7.1 sender rejected")
    async with strict_upstream(strict) as port:
        config = relay_config(
            db_url, {"smarthost": upstream_at(port, max_connections=1, command_timeout=5)}
        )
        async with running_worker(config) as (store, _):
            refused = await _send(store, [A, B], "refused")
            await wait_for_status(store, refused, {A: Status.FAILED, B: Status.FAILED})
            rows = await recipients(store, refused)
            strict.mail_reply = "250 2.1.0 OK"
            accepted = await _send(store, [C], "accepted")
            await wait_for_status(store, accepted, {C: Status.DELIVERED})
    assert {(r.last_code, r.last_text) for r in rows.values()} == {(550, "sender rejected")}
    assert strict.connections == 1
    assert [g[0][:4] for g in strict.groups] == ["MAIL", "RSET", "QUIT"]


@pytest.mark.parametrize(
    ("address", "line"),
    [
        ("bob@example.com", b"RCPT TO:<bob@example.com>\r\n"),
        ("jos\u00e9@example.com", "RCPT TO:<jos\u00e9@example.com>\r\n".encode()),
        ('"odd local"@example.com', b'RCPT TO:<"odd local"@example.com>\r\n'),
        ("postmaster@[127.0.0.1]", b"RCPT TO:<postmaster@[127.0.0.1]>\r\n"),
        ("", b"RCPT TO:<>\r\n"),
    ],
)
def test_command_lines_quote_addresses_as_they_are(address: str, line: bytes) -> None:
    """Plain, non-ASCII (SMTPUTF8), quoted and literal addresses go out as given, in angle
    brackets; the null path is <>."""
    assert command(b"RCPT TO:", address, "utf-8") == line


@pytest.mark.parametrize(
    "address", ["a@b\r\nRSET", "a@b\x00", "a b@example.com", "a@b>\tSIZE=1", "<a@b>x"]
)
def test_command_lines_refuse_what_would_change_the_command(address: str) -> None:
    """Control characters, white space and brackets outside quotes would end the address
    early or add parameters or commands: refused, never trimmed into another address."""
    with pytest.raises(ValueError):
        command(b"RCPT TO:", address, "utf-8")
