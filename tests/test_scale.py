"""Scale-out on one PostgreSQL or MySQL database: several `relay serve` processes share the queue,
each recipient goes out once, a killed process loses nothing, roles split the work."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import smtplib
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from relay.app import Relay
from relay.config import ListenerConfig
from relay.errors import StartupError
from tests.cluster import (
    Node,
    leases_of,
    message,
    query,
    recipient_states,
    send_all,
    start_all,
    stop_all,
)
from tests.support import RunningRelay, free_port, make_config
from tests.upstream import Upstream
from web.app import csrf_key
from web.security import CsrfTokens

TOTAL = 2000
CLIENTS = 16
WITHIN = 120.0


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording upstream that takes messages of any size."""
    with Upstream().start() as server:
        yield server


def wait_for(what: str, check: Callable[[], bool], within: float = WITHIN) -> None:
    """Poll `check` (a database query) until it holds; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def freeze_holding_leases(db_url: str, pid: int, within: float = WITHIN) -> int:
    """Stop (SIGSTOP) the process `pid` at a moment it holds delivery leases; return how
    many. Deliveries take milliseconds, so a process seen holding leases may hold none a
    moment later: it is frozen first, then looked at, and let go on until it holds some."""
    deadline = time.monotonic() + within
    while True:
        os.kill(pid, signal.SIGSTOP)
        held = asyncio.run(leases_of(db_url, pid))
        if held:
            return held
        os.kill(pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError("the process never held a lease")
        time.sleep(0.02)


def all_delivered(db_url: str, expected: int) -> Callable[[], bool]:
    """A check: every one of `expected` recipient rows is delivered."""

    def check() -> bool:
        states = asyncio.run(recipient_states(db_url))
        return sum(states.values()) == expected and all(s == "delivered" for s, _ in states)

    return check


def send_in_parallel(
    ports: list[int], total: int = TOTAL
) -> tuple[list[int], list[threading.Thread]]:
    """CLIENTS threads sending messages 0..total-1 (each its own share) over `ports`;
    returns the list that collects accepted numbers, and the threads (started)."""
    accepted: list[int] = []
    threads = [
        threading.Thread(
            target=send_all,
            args=(range(i, total, CLIENTS), ports[i % len(ports) :] + ports[: i % len(ports)]),
            kwargs={"accepted": accepted},
            daemon=True,
        )
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    return accepted, threads


def deliveries(upstream: Upstream) -> Counter[str]:
    """How many times the upstream accepted each recipient."""
    return Counter(r for t in upstream.delivered for r in t.rcpt_tos)


@pytest.mark.slow
def test_three_processes_deliver_each_recipient_exactly_once(
    shared_url: str, tmp_path: Path, upstream: Upstream
) -> None:
    """3 processes sharing one SMTP port (SO_REUSEPORT) and one database: 2,000 messages,
    each recipient delivered exactly once, the work split between all three."""
    port = free_port()
    nodes = [
        Node(f"n{i}", tmp_path, shared_url, upstream.port, smtp_port=port, reuse_port=True)
        for i in range(3)
    ]
    try:
        start_all(nodes)
        started = time.monotonic()
        accepted, threads = send_in_parallel([port])
        for thread in threads:
            thread.join(WITHIN)
        upstream.wait(lambda u: len(u.transactions) >= TOTAL, WITHIN)
        wait_for("every recipient delivered", all_delivered(shared_url, TOTAL))
        took = time.monotonic() - started
    finally:
        stop_all(nodes)
    assert sorted(accepted) == list(range(TOTAL))
    counts = deliveries(upstream)
    assert set(counts) == {f"r{n}@example.net" for n in range(TOTAL)}
    assert set(counts.values()) == {1}, [r for r, c in counts.items() if c > 1][:10]
    assert asyncio.run(recipient_states(shared_url)) == {("delivered", 1): TOTAL}
    by_node = {node.name: node.delivered() for node in nodes}
    ingested = asyncio.run(
        query(shared_url, "SELECT listener, count(*) FROM message GROUP BY listener")
    )
    print(
        f"\n3 processes, {TOTAL} messages: accepted and delivered in {took:.1f} s;"
        f" delivered by {by_node}; accepted by {dict((r[0], r[1]) for r in ingested)}"
    )
    assert sum(by_node.values()) == TOTAL and all(by_node.values())
    assert len(ingested) >= 2  # the kernel spread the shared port's connections


@pytest.mark.slow
def test_a_process_killed_halfway_loses_nothing(
    shared_url: str, tmp_path: Path, upstream: Upstream
) -> None:
    """SIGKILL one of 3 processes halfway through 2,000 messages: its leases lapse and the
    others finish; every accepted recipient is delivered at least once, none is lost."""
    nodes = [
        Node(f"n{i}", tmp_path, shared_url, upstream.port, delivery="lease = 3.0") for i in range(3)
    ]
    victim = nodes[0]
    try:
        start_all(nodes)
        assert victim.proc is not None
        pid = victim.proc.pid
        accepted, threads = send_in_parallel([n.smtp_port for n in nodes])
        upstream.wait(lambda u: len(u.transactions) >= TOTAL // 2, WITHIN)
        left = freeze_holding_leases(shared_url, pid)
        assert victim.end(signal.SIGKILL) == -signal.SIGKILL
        for thread in threads:
            thread.join(WITHIN)
        rows = sum(asyncio.run(recipient_states(shared_url)).values())
        wait_for("every recipient delivered", all_delivered(shared_url, rows))
    finally:
        stop_all(nodes)
    counts = deliveries(upstream)
    print(
        f"\nkilled n0 with {left} recipients leased; {len(accepted)} accepted,"
        f" {rows} recipient rows, {sum(counts.values())} deliveries,"
        f" {sum(1 for c in counts.values() if c > 1)} recipients twice"
    )
    assert left > 0
    assert set(accepted) == set(range(TOTAL))
    assert {f"r{n}@example.net" for n in accepted} <= set(counts)
    assert all(node.delivered() > 0 for node in nodes[1:])


@pytest.mark.slow
def test_roles_split_ingest_delivery_and_web(
    shared_url: str, tmp_path: Path, upstream: Upstream
) -> None:
    """An smtp-only process accepts, a delivery-only one delivers at once (NOTIFY, or
    MySQL's change_log polled: its queue poll is an hour), a web-only one streams both;
    latency from 250 to the upstream reported."""
    hour = "poll_interval = 3600.0"
    ingest = Node("ingest", tmp_path, shared_url, upstream.port, roles=("smtp",), delivery=hour)
    deliver = Node(
        "deliver", tmp_path, shared_url, upstream.port, roles=("delivery",), delivery=hour
    )
    web = Node("web", tmp_path, shared_url, upstream.port, roles=("web",), delivery=hour)
    nodes = [ingest, deliver, web]
    seen: queue.Queue[tuple[str, str]] = queue.Queue()
    delays = []
    try:
        start_all(nodes)
        stream = threading.Thread(target=_follow, args=(web.web_port, seen), daemon=True)
        stream.start()
        assert seen.get(timeout=10) == ("connected", "")
        with smtplib.SMTP("127.0.0.1", ingest.smtp_port, timeout=10) as client:
            for n in range(20):
                client.sendmail("load@example.com", [f"r{n}@example.net"], message(n))
                accepted = time.perf_counter()
                upstream.wait(lambda u, n=n: len(u.transactions) == n + 1, 10)
                delays.append(time.perf_counter() - accepted)
        kinds = Counter(kind for kind, _ in _drain(seen, until=lambda c: c["status"] >= 20))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ingest.web_port}/healthz")
        for port in (deliver.smtp_port, web.smtp_port):
            with pytest.raises(OSError):
                smtplib.SMTP("127.0.0.1", port, timeout=5)
    finally:
        stop_all(nodes)
    print(
        f"\nsmtp-only process → delivery-only process → upstream, from our 250 to the"
        f" upstream's: p50 {statistics.median(delays) * 1000:.1f} ms,"
        f" max {max(delays) * 1000:.1f} ms (20 messages, {_wake_up(shared_url)})"
    )
    assert kinds["message"] == 20
    assert (ingest.delivered(), deliver.delivered(), web.delivered()) == (0, 20, 0)
    assert "roles: smtp" in ingest.log() and "roles: delivery" in deliver.log()
    assert max(delays) < 5.0  # an hour without NOTIFY


def _wake_up(url: str) -> str:
    """How the delivery process hears of new mail on this database."""
    return "change_log polled every 50 ms" if url.startswith("mysql") else "NOTIFY wake-up"


def _follow(port: int, seen: queue.Queue[tuple[str, str]]) -> None:
    """Read the web node's event stream into `seen`: ("connected", "") then (kind, id)."""
    with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=60) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line == ": connected":
                seen.put(("connected", ""))
            elif line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.put((kind, json.loads(line.removeprefix("data: "))["id"]))


def _drain(
    seen: queue.Queue[tuple[str, str]], until: Callable[[Counter[str]], bool]
) -> list[tuple[str, str]]:
    """Events from `seen` until `until(counts by kind)` holds (10 s at most between two)."""
    got: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    while not until(counts):
        item = seen.get(timeout=10)
        got.append(item)
        counts[item[0]] += 1
    return got


@pytest.mark.parametrize(
    ("one", "other", "valid"),
    [("s3cret", "s3cret", True), ("s3cret", "another", False), ("", "", False)],
)
def test_instances_with_one_web_secret_accept_each_others_forms(
    one: str, other: str, valid: bool
) -> None:
    """A form token made by one instance is good on another with the same [web] secret;
    without a secret each process has a key of its own."""
    made = CsrfTokens(csrf_key(one)).new()
    assert CsrfTokens(csrf_key(other)).valid(made) is valid


@pytest.mark.parametrize("reuse_port", [True, False])
def test_reuse_port_lets_two_processes_share_a_listener(sqlite_url: str, reuse_port: bool) -> None:
    """With reuse_port two relays bind the same SMTP port and both answer; without it the
    second stops with "Address already in use"."""
    port = free_port()
    shared = (ListenerConfig(address=f"127.0.0.1:{port}", reuse_port=reuse_port),)
    first = RunningRelay(make_config(sqlite_url, listener=shared)).start()
    try:
        config = make_config(sqlite_url.replace("relay.db", "other.db"), listener=shared)
        if not reuse_port:
            with pytest.raises(StartupError, match="Address already in use"):
                asyncio.run(Relay(config).start())
            return
        second = RunningRelay(config).start()
        try:
            assert first.smtp_port == second.smtp_port == port
            for n in range(30):
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("a@example.com", ["b@example.org"], message(n))
            counts = (first.count(), second.count())
        finally:
            second.stop()
    finally:
        first.stop()
    assert sum(counts) == 30 and all(counts)
