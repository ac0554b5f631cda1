"""Load generators: Postfix's smtp-source, a Python fallback, and a sequential latency client.

smtp-source (Debian package `postfix`) is written in C and costs the machine little; the
Python fallback does the same dialogue with asyncio streams when it is missing, at a higher
CPU cost (so figures taken with it are lower on a small machine: say which one was used).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
MAIL_FROM = "sender@bench.invalid"
RCPT_TO = "rcpt@bench.invalid"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def smtp_source_path() -> str | None:
    """Where smtp-source is, or None."""
    if os.path.exists(SMTP_SOURCE):
        return SMTP_SOURCE
    return shutil.which("smtp-source")


def message(size: int, seq: int = 0) -> bytes:
    """A plain-text message of about `size` bytes, CRLF line ends, dot-safe."""
    head = (
        f"From: Bench Sender <{MAIL_FROM}>\r\n"
        f"To: Bench Recipient <{RCPT_TO}>\r\n"
        f"Subject: bench message {seq}\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        f"Message-ID: <bench-{seq}@bench.invalid>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


@dataclass(frozen=True)
class Run:
    """One load run: how many messages in how long, and with which tool."""

    messages: int
    seconds: float
    tool: str

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds


def smtp_source(port: int, sessions: int, messages: int, size: int, keep_open: bool) -> Run:
    """Send with smtp-source: `sessions` in parallel, a new connection per message unless
    `keep_open` (-d)."""
    path = smtp_source_path()
    assert path is not None
    cmd = [path, "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    cmd += ["-f", MAIL_FROM, "-t", RCPT_TO, "-M", "client.bench.invalid"]
    if keep_open:
        cmd.append("-d")
    cmd.append(f"{HOST}:{port}")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {done.stderr.decode(errors='replace').strip()}")
    return Run(messages, seconds, "smtp-source")


class _Reply(Exception):
    pass


async def _expect(reader: asyncio.StreamReader, code: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line.startswith(code):
            raise _Reply(line.decode(errors="replace").strip() or "connection closed")
        if line[3:4] != b"-":
            return


async def _session(port: int, todo: list[int], data: bytes, keep_open: bool) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while todo:
        todo.pop()
        if conn is None:
            reader, writer = await asyncio.open_connection(HOST, port)
            conn = reader, writer
            await _expect(reader, b"220")
            writer.write(b"EHLO client.bench.invalid\r\n")
            await _expect(reader, b"250")
        reader, writer = conn
        writer.write(f"MAIL FROM:<{MAIL_FROM}>\r\n".encode())
        await _expect(reader, b"250")
        writer.write(f"RCPT TO:<{RCPT_TO}>\r\n".encode())
        await _expect(reader, b"250")
        writer.write(b"DATA\r\n")
        await _expect(reader, b"354")
        writer.write(data)
        await _expect(reader, b"250")
        if not keep_open or not todo:
            writer.write(b"QUIT\r\n")
            await _expect(reader, b"221")
            writer.close()
            await writer.wait_closed()
            conn = None


def python_source(port: int, sessions: int, messages: int, size: int, keep_open: bool) -> Run:
    """The smtp-source dialogue in Python (asyncio), for machines without Postfix's tools."""
    data = message(size) + b".\r\n"
    todo = list(range(messages))

    async def run() -> None:
        await asyncio.gather(*(_session(port, todo, data, keep_open) for _ in range(sessions)))

    start = time.perf_counter()
    asyncio.run(run())
    return Run(messages, time.perf_counter() - start, "python")


def send(port: int, sessions: int, messages: int, size: int, keep_open: bool) -> Run:
    """Send with smtp-source when installed, else with the Python generator."""
    tool = smtp_source if smtp_source_path() else python_source
    return tool(port, sessions, messages, size, keep_open)


@dataclass(frozen=True)
class Latency:
    """Per-message latency of one sequential client, in milliseconds."""

    p50: float
    p99: float
    samples: int


def percentile(ordered: list[float], fraction: float) -> float:
    """The `fraction` percentile of sorted values, nearest rank (-1 when none): the one
    every bench prints its p50 and p99 with."""
    if not ordered:
        return -1.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Client:
    """A blocking SMTP client on one connection (no pipelining, Nagle off): greeted and
    EHLO'd when made, one message at a time, QUIT on close."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = self.sock.makefile("rb")
        self.expect(b"220")
        self.sock.sendall(b"EHLO client.bench.invalid\r\n")
        self.expect(b"250")

    def expect(self, code: bytes) -> None:
        """Read one reply (all its lines); raise unless it has `code`."""
        while True:
            line = self.stream.readline()
            if not line.startswith(code):
                raise _Reply(line.decode(errors="replace").strip() or "connection closed")
            if line[3:4] != b"-":
                return

    def send(self, data: bytes) -> None:
        """One transaction; `data` is the message as sent after DATA, final dot included.
        Returns once the server has answered 250 to it."""
        self.sock.sendall(f"MAIL FROM:<{MAIL_FROM}>\r\n".encode())
        self.expect(b"250")
        self.sock.sendall(f"RCPT TO:<{RCPT_TO}>\r\n".encode())
        self.expect(b"250")
        self.sock.sendall(b"DATA\r\n")
        self.expect(b"354")
        self.sock.sendall(data)
        self.expect(b"250")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.sock.sendall(b"QUIT\r\n")
                self.expect(b"221")
        finally:
            self.stream.close()
            self.sock.close()


def sequential_latency(port: int, messages: int, size: int, warmup: int = 20) -> Latency:
    """One client, one connection, one message after another: the time from MAIL FROM to
    the 250 after the final dot, per message (blocking sockets, no pipelining)."""
    data = message(size) + b".\r\n"
    times: list[float] = []
    with Client(port) as client:
        for i in range(warmup + messages):
            start = time.perf_counter()
            client.send(data)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return Latency(statistics.median(times), percentile(times, 0.99), len(times))
