"""Chaos that can be trusted: the same seed gives the same failures after a restart, no
accepted message is lost while rules fire, a message's own X-Relay-Chaos header, and
chaos off costing nothing (nothing built, nothing fires, the header left alone)."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import time
from pathlib import Path

import aiosmtplib
import pytest

from relay.chaos import header
from relay.config import ChaosConfig, ChaosMatch, ChaosRuleConfig, Config
from tests.support import RunningRelay, make_config, queue_id


def chaotic_config(db: Path, *rules: ChaosRuleConfig, enabled: bool = True) -> Config:
    """A config storing in `db` with chaos `enabled` and `rules`."""
    return make_config(f"sqlite+aiosqlite:///{db}", chaos=ChaosConfig(enabled, rules))


def rcpt_codes(relay: RunningRelay, count: int) -> list[int]:
    """The replies to `count` RCPTs in one transaction."""
    with relay.smtp() as client:
        client.ehlo()
        client.mail("app@example.com")
        return [client.rcpt(f"user{i}@example.org")[0] for i in range(count)]


def test_the_same_seed_gives_the_same_failures_after_a_restart(tmp_path: Path) -> None:
    """A probability rule with a seed fails the same RCPTs in a fresh relay, run after
    run; another seed fails others."""
    rule = ChaosRuleConfig(stage="rcpt", code=451, probability=50, seed=1234)
    runs = []
    for run, seed in enumerate([1234, 1234, 99]):
        config = chaotic_config(tmp_path / f"run{run}.db", dataclasses.replace(rule, seed=seed))
        relay = RunningRelay(config).start()
        try:
            runs.append(rcpt_codes(relay, 24))
        finally:
            relay.stop()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert 0 < runs[0].count(451) < 24


async def _send_one(port: int, index: int) -> tuple[int, str]:
    """Send message `index` on its own connection: (the last reply code, its text)."""
    asks = b"X-Relay-Chaos: data-end=451\r\n" if index % 7 == 0 else b""
    content = (
        b"From: app@example.com\r\nTo: u@example.org\r\n"
        + asks
        + f"Subject: message {index}\r\n\r\nbody {index}\r\n".encode()
    )
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        await client.mail("app@example.com")
        await client.rcpt(f"u{index}@example.org")
        reply = await client.data(content)
        return reply.code, reply.message
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    finally:
        client.close()


async def _send_all(port: int, count: int) -> list[tuple[int, str]]:
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> tuple[int, str]:
        async with limit:
            return await _send_one(port, index)

    return await asyncio.gather(*(one(i) for i in range(count)))


def test_no_accepted_message_is_lost_while_rules_fire(tmp_path: Path) -> None:
    """80 messages over 8 connections at a time while rules fail RCPT, DATA and the end of
    DATA at random (seeded), delay MAIL, and some messages ask for their own failure:
    every 250 is stored with its own subject, nothing refused is."""
    rules = (
        ChaosRuleConfig(stage="mail", action="delay", delay=0.02, every=5),
        ChaosRuleConfig(stage="rcpt", code=450, probability=15, seed=1),
        ChaosRuleConfig(stage="data", code=451, probability=15, seed=2),
        ChaosRuleConfig(stage="data-end", code=452, probability=30, seed=3),
    )
    relay = RunningRelay(chaotic_config(tmp_path / "relay.db", *rules)).start()
    try:
        replies = asyncio.run(_send_all(relay.smtp_port, 80))
        accepted = {
            queue_id(text.encode()): index
            for index, (code, text) in enumerate(replies)
            if code == 250
        }
        refused = [index for index, (code, _) in enumerate(replies) if code != 250]
        assert {code for code, _ in replies} <= {250, 450, 451, 452}
        assert len(accepted) > 10 and len(refused) > 10
        assert all(index % 7 for index in accepted.values())  # the header's 451 held
        assert relay.count() == len(accepted)
        for message_id, index in accepted.items():
            assert relay.message(message_id).subject == f"message {index}"
    finally:
        relay.stop()


@pytest.fixture
def chaotic(tmp_path: Path) -> RunningRelay:
    """A relay with chaos on and no rules (stopped by the test's finalizer)."""
    return RunningRelay(chaotic_config(tmp_path / "relay.db"))


def data_reply(relay: RunningRelay, content: bytes) -> tuple[int, bytes, float]:
    """Send `content`: the reply to the end of DATA, and the seconds it took."""
    with relay.smtp() as client:
        client.ehlo()
        client.mail("app@example.com")
        client.rcpt("u@example.org")
        started = time.monotonic()
        try:
            code, text = client.data(content)
        except smtplib.SMTPDataError as exc:
            code, text = exc.smtp_code, exc.smtp_error
        return code, text, time.monotonic() - started


BODY = b"Subject: hello\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    ("asks", "code", "text"),
    [
        (b"X-Relay-Chaos: data-end=452\r\n", 452, b"4.0.0 Chaos: failure asked for by the"),
        (b"X-Relay-Chaos: data-end=554 5.7.1 Go away\r\n", 554, b"5.7.1 Go away"),
        (b"x-relay-chaos:data-end=421\r\n 4.3.2 folded\r\n", 421, b"4.3.2 folded"),
        (b"X-Relay-Chaos: delay=0.3\r\nX-Relay-Chaos: data-end=451\r\n", 451, b"4.0.0 Chaos"),
        (b"X-Relay-Chaos: sometimes\r\n", 554, b"5.6.0 X-Relay-Chaos: cannot read 'sometimes'"),
    ],
)
def test_a_message_asks_for_its_own_failure_and_is_not_stored(
    chaotic: RunningRelay, asks: bytes, code: int, text: bytes
) -> None:
    """X-Relay-Chaos: the end of DATA answers what the header asks (or says why it cannot
    read it), for this message only; nothing is stored, and the next message is."""
    relay = chaotic.start()
    try:
        got, said, _ = data_reply(relay, asks + BODY)
        assert (got, said[: len(text)]) == (code, text)
        assert relay.count() == 0
        assert data_reply(relay, BODY)[0] == 250
        assert relay.count() == 1
    finally:
        relay.stop()


def test_a_delay_header_waits_then_stores_the_message_without_it(chaotic: RunningRelay) -> None:
    """X-Relay-Chaos: delay=0.5 holds the reply, then the message is stored without the
    header (and with every other byte)."""
    relay = chaotic.start()
    try:
        content = b"X-Before: 1\r\nX-Relay-Chaos: delay=0.5\r\nX-After: 2\r\n" + BODY
        code, text, took = data_reply(relay, content)
        assert code == 250 and took >= 0.5
        raw = relay.raw(queue_id(text))
        assert b"X-Relay-Chaos" not in raw
        assert raw.endswith(b"X-Before: 1\r\nX-After: 2\r\n" + BODY)
    finally:
        relay.stop()


def test_chaos_off_builds_nothing_fires_nothing_and_leaves_the_header(tmp_path: Path) -> None:
    """Off: no Chaos object anywhere (each stage's one check finds None), a rule in the
    file never fires, and X-Relay-Chaos is stored like any header."""
    always = ChaosRuleConfig(stage="rcpt", code=451)
    config = chaotic_config(tmp_path / "relay.db", always, enabled=False)
    relay = RunningRelay(config).start()
    try:
        app = relay.relay
        assert app.chaos is None and app.worker is not None and app.worker.chaos is None
        assert all(item.chaos is None and item.handler.chaos is None for item in app.listeners)
        assert rcpt_codes(relay, 3) == [250] * 3
        code, text, _ = data_reply(relay, b"X-Relay-Chaos: data-end=452\r\n" + BODY)
        assert code == 250
        assert b"X-Relay-Chaos: data-end=452" in relay.raw(queue_id(text))
    finally:
        relay.stop()


@pytest.mark.parametrize(
    ("content", "values", "stripped"),
    [
        (b"A: 1\r\n\r\nX-Relay-Chaos: delay=1\r\n", [], b"A: 1\r\n\r\nX-Relay-Chaos: delay=1\r\n"),
        (b"X-Relay-Chaos: delay=1\r\nA: 1\r\n\r\nb\r\n", ["delay=1"], b"A: 1\r\n\r\nb\r\n"),
        (
            b"A: 1\nX-RELAY-CHAOS:  data-end=451\n\tfolded  text\n\nb\n",
            ["data-end=451 folded text"],
            b"A: 1\n\nb\n",
        ),
        (b"X-Relay-Chaos: delay=1", ["delay=1"], b""),
    ],
)
def test_the_header_is_found_in_the_header_section_only_and_removed_whole(
    content: bytes, values: list[str], stripped: bytes
) -> None:
    """Only the header section counts (not the body); a folded value is unfolded; the
    header goes with its continuation lines, and nothing else does."""
    assert header.requests(content) == values
    if values:
        assert header.strip(content) == stripped


def test_a_header_delay_is_capped() -> None:
    """A header cannot hold a session longer than MAX_DELAY seconds."""
    verdict = header.verdict(["delay=86400"])
    assert verdict is not None and verdict.delay == header.MAX_DELAY


def test_a_recipient_match_at_data_end_holds_for_any_recipient(tmp_path: Path) -> None:
    """At data-end a recipient pattern matches when any recipient of the message does."""
    rule = ChaosRuleConfig(stage="data-end", code=452, match=ChaosMatch(recipient="*@b.example"))
    relay = RunningRelay(chaotic_config(tmp_path / "relay.db", rule)).start()
    try:
        with relay.smtp() as client:
            assert client.sendmail("s@example.com", ["x@a.example"], BODY) == {}
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("s@example.com", ["x@a.example", "y@b.example"], BODY)
        assert refused.value.smtp_code == 452
        assert relay.count() == 1
    finally:
        relay.stop()
