"""One message of many parts over HTTP: a part, the page, and the server while 8 clients
download parts.

    .venv/bin/python -m bench.parts                # 1,000 attachments of 60 bytes
    .venv/bin/python -m bench.parts --parts 328 --part-size 250

Starts `relay serve` in its own process (capture mode, a temporary SQLite file, free
loopback ports), sends it COPIES messages with a text part and `--parts` small base64
attachments over SMTP, then times over kept-alive connections:
1. one attachment downloaded (`/message/ID/part/N`): first of ten copies of the message,
   each the first download of its message (the server finds its structure), then of one
   copy, a different part each time (the structure is kept),
2. the message page (`/message/ID`, the Attachments tab lists every part),
3. for `--seconds`, 8 clients (in another process) downloading parts as fast as they are
   served, while this process fetches `/healthz` every 20 ms and sends a one-line message
   over SMTP every 200 ms: their latencies say whether the event loop stayed free.
Times are client round trips on loopback; CPU is the relay process's per request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from bench import servers
from bench.runner import machine, resolve_loop

PART_TARGET_MS = 20.0
PAGE_TARGET_MS = 150.0
HEALTHZ_TARGET_MS = 20.0
CLIENTS = 8
COPIES = 11
"""Messages sent: the first part of each but one is timed as a download of a message
whose structure is not yet known (the server scans it); parts of the last, after."""


def many_parts(parts: int, size: int) -> bytes:
    """A message with a text part and `parts` attachments of `size` random bytes."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "files@example.com", "me@example.com", "Many parts"
    msg.set_content("Here are the files.")
    for i in range(parts):
        msg.add_attachment(
            os.urandom(size), maintype="application", subtype="octet-stream", filename=f"f{i}.bin"
        )
    return msg.as_bytes(policy=policy.SMTP)


def send(port: int, data: bytes) -> str:
    """Send `data` over SMTP; the queue id of the 250."""
    with smtplib.SMTP(servers.HOST, port, timeout=60) as client:
        client.sendmail("files@example.com", ["me@example.com"], data)
        client.noop()
    return ""


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(client: httpx.Client, path: str) -> float:
    """One GET's round trip in ms (the body read); fails on a status other than 200."""
    started = time.perf_counter()
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code}")
    return (time.perf_counter() - started) * 1000


def verdict(value: float, target: float) -> str:
    """`≤ target ms ok`, or OVER."""
    return f"≤ {target:.0f} ms {'ok' if value <= target else 'OVER'}"


def sequential(
    base: str, pid: int, paths: list[str], label: str, target: float, warm: int = 1
) -> str:
    """Fetch the first `warm` of `paths` to warm up, then each in order; one line of
    figures."""
    with httpx.Client(base_url=base, timeout=60) as client:
        for path in paths[:warm]:
            timed(client, path)
        cpu = servers.process_tree_cpu(pid)
        times = [timed(client, path) for path in paths]
        cpu_ms = (servers.process_tree_cpu(pid) - cpu) / len(paths) * 1000
    median = statistics.median(times)
    return (
        f"{label:<36} {median:8.1f} {percentile(times, 0.99):8.1f} {cpu_ms:8.1f}"
        f"  {verdict(median, target)}"
    )


async def _download(base: str, paths: list[str], seconds: float) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as web:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await web.get(random.choice(paths))
                response.raise_for_status()
                times.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return times


def downloaders(
    base: str, paths: list[str], seconds: float, out: multiprocessing.Queue[object]
) -> None:
    """CLIENTS concurrent part downloads for `seconds` (run in a process of its own)."""
    out.put(asyncio.run(_download(base, paths, seconds)))


def probe(base: str, smtp_port: int, seconds: float) -> tuple[list[float], list[float]]:
    """/healthz every 20 ms and a one-line SMTP message every 200 ms, for `seconds`: their
    latencies in ms."""
    healthz: list[float] = []
    sends: list[float] = []
    deadline = time.perf_counter() + seconds

    def smtp_loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            send(smtp_port, b"Subject: ping\r\n\r\none line\r\n")
            sends.append((time.perf_counter() - started) * 1000)
            time.sleep(0.2)

    mailer = threading.Thread(target=smtp_loop)
    mailer.start()
    with httpx.Client(base_url=base, timeout=60) as client:
        while time.perf_counter() < deadline:
            healthz.append(timed(client, "/healthz"))
            time.sleep(0.02)
    mailer.join()
    return healthz, sends


def under_load(base: str, smtp_port: int, paths: list[str], seconds: float) -> list[str]:
    """The figures while CLIENTS clients download parts."""
    results: multiprocessing.Queue[object] = multiprocessing.Queue()
    load = multiprocessing.Process(target=downloaders, args=(base, paths, seconds, results))
    load.start()
    time.sleep(0.5)  # let the downloads get going
    healthz, sends = probe(base, smtp_port, seconds - 1.0)
    downloads = results.get()
    load.join()
    assert isinstance(downloads, list)
    p99 = percentile(healthz, 0.99)
    return [
        f"while {CLIENTS} clients download parts for {seconds:.0f} s:",
        f"  part downloads: {len(downloads) / seconds:.0f}/s, median"
        f" {statistics.median(downloads):.1f} ms, p99 {percentile(downloads, 0.99):.1f} ms",
        f"  /healthz: median {statistics.median(healthz):.1f} ms, p99 {p99:.1f} ms"
        f" ({len(healthz)} fetches)  {verdict(p99, HEALTHZ_TARGET_MS)}",
        f"  a one-line SMTP message: median {statistics.median(sends):.1f} ms,"
        f" p99 {percentile(sends, 0.99):.1f} ms ({len(sends)} sent)",
    ]


def run(workdir: Path, parts: int, size: int, runs: int, seconds: float, loop: str) -> None:
    """Start relay, send the message, print every figure."""
    data = many_parts(parts, size)
    relay = servers.Relay(workdir, event_loop=loop)
    relay.start()
    try:
        base = f"http://{servers.HOST}:{relay.web_port}"
        servers.wait_http(f"{base}/healthz", 30)
        for _ in range(COPIES):
            send(relay.port, data)
        with httpx.Client(base_url=base, timeout=60) as client:
            listed = client.get("/api/v1/messages", params={"limit": COPIES}).json()
            copies = [m["ID"] for m in listed["messages"]]
            message = copies.pop()
            found = client.get(f"/api/v1/message/{message}").json()["Attachments"]
        ids = [a["PartID"] for a in found]
        print(f"relay serve (pid {relay.pid}, event loop {loop}); one message of {len(data):,}"
              f" bytes with {len(ids):,} attachments of {size} bytes\n")  # fmt: skip
        print(f"{'':<36} {'median':>8} {'p99':>8} {'CPU':>8}")
        print(f"{'':<36} {'ms':>8} {'ms':>8} {'ms':>8}")
        picks = [ids[i * len(ids) // runs] for i in range(runs)]
        part_paths = [f"/message/{message}/part/{p}" for p in picks]
        first = [f"/message/{m}/part/{ids[len(ids) // 2]}" for m in copies]
        print(sequential(base, relay.pid, first, "a message's first part", PART_TARGET_MS, 0))
        print(sequential(base, relay.pid, part_paths, "one part downloaded", PART_TARGET_MS))
        page = [f"/message/{message}?tab=attachments"] * max(3, runs // 5)
        print(sequential(base, relay.pid, page, "the message page", PAGE_TARGET_MS))
        print()
        every = [f"/message/{message}/part/{p}" for p in ids]
        print("\n".join(under_load(base, relay.port, every, seconds)))
    finally:
        relay.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", type=int, default=1000, help="attachments in the message")
    parser.add_argument("--part-size", type=int, default=60, help="bytes of each attachment")
    parser.add_argument("--runs", type=int, default=100, help="timed part downloads")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load phase")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), args.parts, args.part_size, args.runs, args.seconds, resolve_loop(args.loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
