"""Load for reliability tests: numbered messages, a crowd of SMTP clients sending them at
once (every 250 recorded with its queue id), and a tally of what reached an upstream."""

from __future__ import annotations

import random
import re
import smtplib
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from tests.upstream import Upstream

_QUEUE_ID = re.compile(rb"\(relay\) with \w+ id (\w{26})")
_RECEIVED = re.compile(rb"Received: from [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)+")


@dataclass(frozen=True)
class Outgoing:
    """One message a client will send: its recipients and the exact bytes the server gets."""

    index: int
    recipients: tuple[str, ...]
    data: bytes


def outgoing(index: int, rng: random.Random) -> Outgoing:
    """Message number `index`: 1 to 3 recipients, 200 B to 30 kB of lines, some of them
    starting with a dot (stuffed on the wire), some 8-bit; CRLF line ends throughout."""
    recipients = tuple(f"user{index}-{k}@dest{k}.example" for k in range(rng.randint(1, 3)))
    lines = [
        b"From: Load <load@example.com>",
        b"To: " + ", ".join(recipients).encode(),
        f"Subject: load test message {index}".encode(),
        f"Message-ID: <load-{index}@example.com>".encode(),
        b"Content-Type: text/plain; charset=utf-8",
        b"",
    ]
    size = rng.randint(200, 30_000)
    while sum(len(line) + 2 for line in lines) < size:
        kind = rng.random()
        if kind < 0.05:
            lines.append(b"." + rng.randbytes(8).hex().encode())
        elif kind < 0.15:
            lines.append(f"Grüße Nummer {rng.randint(0, 10**9)} — ✓".encode())
        else:
            lines.append(rng.randbytes(rng.randint(1, 38)).hex().encode())
    return Outgoing(index, recipients, b"\r\n".join(lines) + b"\r\n")


def messages(count: int, seed: int) -> list[Outgoing]:
    """`count` numbered messages, the same for the same seed."""
    rng = random.Random(seed)
    return [outgoing(i, rng) for i in range(count)]


def queue_id_of(data: bytes) -> str | None:
    """The queue id in our Received header at the top of a relayed message."""
    match = _QUEUE_ID.search(data, 0, 600)
    return match.group(1).decode() if match else None


def without_received(raw: bytes) -> bytes:
    """Stored bytes less the one Received header relay put in front (must be there)."""
    match = _RECEIVED.match(raw)
    assert match, raw[:300]
    return raw[match.end() :]


@dataclass
class Crowd:
    """`clients` threads, each on its own connection, sending its share of `outgoing`.

    A client stops at its first connection error (as when the server is killed) and
    records it; `accepted` maps message index to the queue id of its 250.
    """

    port: int
    outgoing: list[Outgoing]
    clients: int = 16
    accepted: dict[int, str] = field(default_factory=dict)
    replies: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    finished: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(self.outgoing[k :: self.clients],))
            for k in range(self.clients)
        ]

    def start(self) -> Crowd:
        """Start every client."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Ask every client to stop after the message it is sending."""
        self._stop.set()

    def join(self, within: float = 300) -> None:
        """Wait for every client to finish."""
        for thread in self._threads:
            thread.join(within)
            assert not thread.is_alive(), "a client is still sending"

    def wait_accepted(self, count: int, within: float = 300) -> int:
        """Block until `count` messages were accepted or every client is done."""
        with self._lock:
            self._lock.wait_for(
                lambda: len(self.accepted) >= count or self.finished == self.clients, within
            )
            return len(self.accepted)

    def _client(self, share: list[Outgoing]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as client:
                client.ehlo("crowd.example")
                for out in share:
                    if self._stop.is_set():
                        break
                    self._send(client, out)
        except (OSError, smtplib.SMTPException) as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.finished += 1
                self._lock.notify_all()

    def _send(self, client: smtplib.SMTP, out: Outgoing) -> None:
        code, _ = client.mail("sender@example.com")
        codes = [code]
        if code == 250:
            codes += [client.rcpt(r)[0] for r in out.recipients]
        if any(c != 250 for c in codes):
            client.rset()
            with self._lock:
                self.replies.update(c for c in codes if c != 250)
            return
        code, reply = client.data(out.data)
        with self._lock:
            self.replies[code] += 1
            if code == 250:
                match = re.search(rb"queued as (\w+)", reply)
                assert match, reply
                self.accepted[out.index] = match.group(1).decode()
            self._lock.notify_all()


class WebBurst(threading.Thread):
    """A browser-like client acting on accepted messages as fast as it can: delete one,
    mark one read, bulk-mark three read, again and again; every POST carries the CSRF
    token of a page, as a browser's would. It acts only on ids `eligible` accepts, and
    after `delete_all_after` rounds deletes once every message that search `query` finds."""

    def __init__(
        self,
        base: str,
        crowd: Crowd,
        eligible: Callable[[str], bool] = lambda _: True,
        query: str = "",
        delete_all_after: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.crowd = crowd
        self.eligible = eligible
        self.query = query
        self.delete_all_after = delete_all_after
        self.deleted_all = False
        self.read: set[str] = set()
        self.deleted: set[str] = set()
        self.deleting: set[str] = set()
        self.answered = 0
        self.started = threading.Event()
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        """Act until the server goes away."""
        try:
            with httpx.Client(base_url=self.base, timeout=30) as client:
                page = client.get("/")
                match = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert match, page.text[:500]
                self._act(client, match.group(1))
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _act(self, client: httpx.Client, token: str) -> None:
        seen: set[str] = set()
        rounds = 0
        origin = {"Origin": self.base}
        while not self.stopping.is_set():
            known = len(self.crowd.accepted)
            fresh = [i for i in list(self.crowd.accepted.values()) if i not in seen]
            ids = [i for i in fresh if self.eligible(i)][:5]
            if len(ids) < 5:
                everyone_done = self.crowd.finished == self.crowd.clients
                if everyone_done and self.crowd.wait_accepted(known + 1, within=0) == known:
                    return
                self.crowd.wait_accepted(known + 20, within=1)
                continue
            seen.update(fresh[: fresh.index(ids[-1]) + 1])
            self.started.set()
            rounds += 1
            if rounds == self.delete_all_after:
                form = {"csrf": token, "action": "delete", "scope": "all", "confirm": "yes"}
                answer = client.post(
                    "/messages/action", data={**form, "q": self.query}, headers=origin
                )
                assert answer.status_code == 303, answer.text
                self.deleted_all = True
            self.deleting.add(ids[0])  # sent, unanswered: a kill now may or may not undo it
            answer = client.post(
                f"/message/{ids[0]}/action",
                data={"csrf": token, "action": "delete", "next": "/"},
                headers=origin,
            )
            assert answer.status_code == 303, answer.text
            self.deleting.discard(ids[0])
            self.deleted.add(ids[0])
            answer = client.post(
                f"/message/{ids[1]}/action", data={"csrf": token, "action": "read"}, headers=origin
            )
            assert answer.status_code == 303, answer.text
            self.read.add(ids[1])
            answer = client.post(
                "/messages/action",
                data={"csrf": token, "action": "read", "ids": ids[2:]},
                headers=origin,
            )
            assert answer.status_code == 303, answer.text
            self.read.update(ids[2:])
            self.answered += 3


class Arrivals:
    """What reached an upstream, per (queue id, recipient), counted as it comes in, and
    which of the `expected` pairs have not arrived yet."""

    def __init__(self, expected: Iterable[tuple[str, str]] = ()) -> None:
        self.count: Counter[tuple[str, str]] = Counter()
        self.missing = set(expected)
        self._seen = 0

    def update(self, upstream: Upstream) -> Arrivals:
        """Count the transactions answered since the last update (call under `wait`)."""
        new = upstream.transactions[self._seen :]
        self._seen += len(new)
        for transaction in new:
            if not transaction.reply.startswith("2"):
                continue
            queue_id = queue_id_of(transaction.data) or "?"
            for rcpt in transaction.rcpt_tos:
                self.count[(queue_id, rcpt)] += 1
                self.missing.discard((queue_id, rcpt))
        return self

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first of the same recipient of the same message."""
        return sum(n - 1 for n in self.count.values() if n > 1)
