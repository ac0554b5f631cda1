"""Chaos on the way in, with real SMTP clients (smtplib, aiosmtplib, swaks): every stage,
action, `when` mode and match; what a failure leaves stored (nothing)."""

from __future__ import annotations

import random
import smtplib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos_clients import CLIENTS, DONE, MESSAGE, Attempt, Outcome, with_smtplib
from tests.chaos_kit import add_rule, chaotic_relay, clear, rule_now
from tests.support import PASSWORD, USER, RunningRelay

STAGES = ("connect", "helo", "auth", "mail", "rcpt", "data", "data-end")
# A code per stage, as a server might answer there.
CODES = {"connect": 421, "helo": 451, "auth": 454, "mail": 451, "rcpt": 450}
CODES.update({"data": 451, "data-end": 452})


@pytest.fixture(scope="module")
def chaotic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay with chaos on, a plain listener and one with AUTH (tests/chaos_kit.py)."""
    running = chaotic_relay(tmp_path_factory.mktemp("chaos"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def relay(chaotic: RunningRelay) -> Iterator[RunningRelay]:
    """The chaotic relay, its rules, triggers and mail cleared after each test."""
    yield chaotic
    clear(chaotic)


def authed(relay: RunningRelay, **settings: Any) -> Attempt:
    """An attempt on the "authed" listener, logging in as the test user."""
    return Attempt(relay.port("authed"), user=USER, password=PASSWORD, **settings)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stage", STAGES)
def test_a_reply_rule_fails_its_stage_and_nothing_is_stored(
    relay: RunningRelay, stage: str, client: str
) -> None:
    """A reply rule at each stage: the client gets its code there, and nothing is stored."""
    add_rule(relay, stage=stage, code=CODES[stage], text=f"failed at {stage}")
    outcome = CLIENTS[client](authed(relay))
    assert (outcome.stage, outcome.code) == (stage, CODES[stage])
    assert f"failed at {stage}" in outcome.text
    assert relay.count() == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_without_rules_every_client_gets_its_message_stored(
    relay: RunningRelay, client: str
) -> None:
    """The control: chaos on and no rule, the same transaction is stored."""
    outcome = CLIENTS[client](authed(relay))
    assert (outcome.stage, outcome.code) == (DONE, 250)
    assert relay.count() == 1


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stage", STAGES)
def test_a_disconnect_rule_hangs_up_without_a_reply(
    relay: RunningRelay, stage: str, client: str
) -> None:
    """A disconnect rule at each stage: the connection closes with no reply, nothing stored."""
    add_rule(relay, stage=stage, action="disconnect")
    outcome = CLIENTS[client](authed(relay))
    assert outcome == Outcome(stage, None)
    assert relay.count() == 0


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stage", ["connect", "rcpt", "data-end"])
def test_a_delay_rule_waits_then_carries_on(relay: RunningRelay, stage: str, client: str) -> None:
    """A delay rule holds its stage for its seconds, then the transaction goes through."""
    rule = add_rule(relay, stage=stage, action="delay", delay=0.6)
    started = time.monotonic()
    outcome = CLIENTS[client](authed(relay))
    assert (outcome.stage, outcome.code) == (DONE, 250)
    assert time.monotonic() - started >= 0.6
    assert rule_now(relay, rule["id"])["hits"] == 1
    assert relay.count() == 1


def test_a_reply_carries_its_enhanced_code_and_text(relay: RunningRelay) -> None:
    """The reply is the rule's code, enhanced code and text; without them, X.0.0 and a
    text naming the rule."""
    match = {"listener": "authed"}
    add_rule(relay, stage="mail", match=match, code=554, enhanced="5.7.1", text="Go away")
    assert with_smtplib(authed(relay)) == Outcome("mail", 554, "5.7.1 Go away")
    plain = add_rule(relay, stage="rcpt", code=450)
    outcome = with_smtplib(Attempt(relay.port("plain")))
    assert outcome == Outcome("rcpt", 450, f"4.0.0 Chaos: failure injected by rule {plain['id']}")


def rcpt_codes(relay: RunningRelay, count: int, domain: str = "example.org") -> list[int]:
    """The replies to `count` RCPTs to `domain` in one transaction."""
    with smtplib.SMTP("127.0.0.1", relay.port("plain"), timeout=10) as client:
        client.ehlo()
        client.mail("app@example.com")
        return [client.rcpt(f"user{i}@{domain}")[0] for i in range(count)]


def seeded(seed: int, percent: float, count: int) -> list[int]:
    """The replies a probability rule gives: Python's Mersenne Twister, seeded with `seed`."""
    draws = random.Random(seed)
    return [451 if draws.random() * 100 < percent else 250 for _ in range(count)]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({}, [451] * 6),
        ({"first": 2}, [451, 451, 250, 250, 250, 250]),
        ({"every": 3}, [250, 250, 451, 250, 250, 451]),
        ({"limit": 2}, [451, 451, 250, 250, 250, 250]),
        ({"every": 2, "limit": 2}, [250, 451, 250, 451, 250, 250]),
        ({"probability": 0}, [250] * 6),
        ({"probability": 100}, [451] * 6),
        ({"probability": 50, "seed": 7}, seeded(7, 50, 6)),
        ({"probability": 30, "seed": 2, "limit": 1}, [250, 250, 451, 250, 250, 250]),
    ],
)
def test_when_modes_decide_which_matches_fire(
    relay: RunningRelay, when: dict[str, Any], expected: list[int]
) -> None:
    """always, first = N, every = N, probability with a seed, and limit."""
    if when.get("seed") == 2:  # seed 2 draws two hits in six at 30 %: the limit keeps one
        assert seeded(2, 30, 6) == [250, 250, 451, 451, 250, 250]
    rule = add_rule(relay, stage="rcpt", code=451, **when)
    codes = rcpt_codes(relay, 6)
    assert codes == expected
    now = rule_now(relay, rule["id"])
    assert (now["matched"], now["hits"]) == (6, codes.count(451))


def test_a_probability_without_a_seed_reports_the_seed_it_drew(relay: RunningRelay) -> None:
    """A rule given no seed picks one and shows it, so that the run can be repeated."""
    rule = add_rule(relay, stage="rcpt", probability=40)
    assert isinstance(rule["seed"], int)
    assert rcpt_codes(relay, 8) == seeded(rule["seed"], 40, 8)


@pytest.mark.parametrize(
    ("match", "failing", "passing"),
    [
        (
            {"sender": "*@noisy.example"},
            Attempt(0, sender="app@noisy.example"),
            Attempt(0, sender="app@quiet.example"),
        ),
        (
            {"recipient": "flaky.example"},
            Attempt(0, recipients=("ok@example.org", "x@flaky.example")),
            Attempt(0, recipients=("ok@example.org", "y@example.org")),
        ),
        ({"listener": "auth*"}, Attempt(0, user=USER, password=PASSWORD), Attempt(0)),
        ({"user": USER.upper()}, Attempt(0, user=USER, password=PASSWORD), Attempt(0)),
    ],
    ids=["sender", "recipient", "listener", "user"],
)
@pytest.mark.parametrize("client", ["smtplib", "aiosmtplib"])
def test_a_match_picks_the_mail_that_fails(
    relay: RunningRelay, match: dict[str, str], failing: Attempt, passing: Attempt, client: str
) -> None:
    """sender, recipient, listener and user patterns: only what they match fails."""
    stage = "rcpt" if "recipient" in match else "mail"
    add_rule(relay, stage=stage, code=451, match=match)
    port = relay.port("authed" if failing.user else "plain")
    failed = CLIENTS[client](_at(failing, port))
    assert (failed.stage, failed.code) == (stage, 451)
    passed = CLIENTS[client](_at(passing, relay.port("plain")))
    assert (passed.stage, passed.code) == (DONE, 250)
    assert relay.count() == 1


def _at(attempt: Attempt, port: int) -> Attempt:
    return Attempt(
        port, attempt.sender, attempt.recipients, attempt.content, attempt.user, PASSWORD
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_a_header_match_at_data_end_fails_only_that_message(
    relay: RunningRelay, client: str
) -> None:
    """header = "X-Tenant: acme*" at data-end: the matching message is refused, another
    from the same sender to the same recipients is stored."""
    add_rule(
        relay, stage="data-end", code=554, text="at data-end", match={"header": "X-Tenant: acme*"}
    )
    tagged = b"X-Tenant: ACME-eu\r\n" + MESSAGE
    other = b"X-Tenant: globex\r\n" + MESSAGE
    refused = CLIENTS[client](Attempt(relay.port("plain"), content=tagged))
    assert (refused.stage, refused.code) == ("data-end", 554)
    stored = CLIENTS[client](Attempt(relay.port("plain"), content=other))
    assert (stored.stage, stored.code) == (DONE, 250)
    assert relay.count() == 1


def test_rules_are_tried_in_order_delays_add_up_the_first_reply_decides(
    relay: RunningRelay,
) -> None:
    """A delay rule lets the rules after it be tried; after a reply fires, later rules are
    not asked (their counters stay)."""
    delay = add_rule(relay, stage="rcpt", action="delay", delay=0.3)
    first = add_rule(relay, stage="rcpt", code=450, first=1)
    later = add_rule(relay, stage="rcpt", code=451)
    started = time.monotonic()
    assert rcpt_codes(relay, 2) == [450, 451]
    assert time.monotonic() - started >= 0.6
    counts = [
        (r["matched"], r["hits"])
        for r in map(rule_now, [relay] * 3, [delay["id"], first["id"], later["id"]])
    ]
    assert counts == [(2, 2), (2, 1), (1, 1)]
