"""The chaos API: Mailpit's GET/PUT /api/v1/chaos with Mailpit's semantics, relay's rules
(GET/POST/DELETE /api/v1/chaos/rules, DELETE /api/v1/chaos/rules/{ID}), the hit counters
in the API and in /metrics, and 400 for every route when chaos is off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config import ChaosConfig, ChaosMatch, ChaosRuleConfig
from tests.chaos_clients import Attempt, Outcome, with_aiosmtplib, with_smtplib
from tests.chaos_kit import add_rule, chaotic_relay, clear
from tests.support import PASSWORD, USER, RunningRelay, make_config
from tests.test_api_openapi import DOCUMENT, problems

DEFAULTS = {
    "Sender": {"ErrorCode": 451, "Probability": 0},
    "Recipient": {"ErrorCode": 451, "Probability": 0},
    "Authentication": {"ErrorCode": 535, "Probability": 0},
}
ROUTES = [
    ("GET", "/api/v1/chaos"),
    ("PUT", "/api/v1/chaos"),
    ("GET", "/api/v1/chaos/rules"),
    ("POST", "/api/v1/chaos/rules"),
    ("DELETE", "/api/v1/chaos/rules"),
    ("DELETE", "/api/v1/chaos/rules/1"),
]


@pytest.fixture(scope="module")
def chaotic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay with chaos on, a plain listener and one with AUTH (tests/chaos_kit.py)."""
    running = chaotic_relay(tmp_path_factory.mktemp("chaos"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api(chaotic: RunningRelay) -> Iterator[httpx.Client]:
    """An HTTP client of the chaotic relay; rules, triggers and mail cleared after."""
    with httpx.Client(base_url=chaotic.web_url, timeout=30) as client:
        yield client
    clear(chaotic)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_chaos_route_answers_400_when_chaos_is_off(
    tmp_path: Path, method: str, path: str
) -> None:
    """Off: each route answers 400 {"Error": "Chaos is not enabled"}, as Mailpit does."""
    relay = RunningRelay(make_config(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")).start()
    try:
        body = {} if method in ("PUT", "POST") else None
        response = httpx.request(method, relay.web_url + path, json=body)
    finally:
        relay.stop()
    assert (response.status_code, response.json()) == (400, {"Error": "Chaos is not enabled"})


def test_mailpit_triggers_start_at_mailpits_defaults(api: httpx.Client) -> None:
    """GET: Sender 451, Recipient 451, Authentication 535, all at probability 0."""
    assert api.get("/api/v1/chaos").json() == DEFAULTS


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"Sender": {"ErrorCode": 450, "Probability": 5}}, {"Sender": [450, 5]}),
        ({"Recipient": {"Probability": 100}}, {"Recipient": [451, 100]}),
        ({"Authentication": {"ErrorCode": 0, "Probability": 7}}, {"Authentication": [535, 7]}),
        ({"Sender": {}, "Recipient": {"ErrorCode": 599}}, {"Recipient": [599, 0]}),
        ({}, {}),
    ],
)
def test_put_sets_every_trigger_and_resets_the_omitted_ones(
    api: httpx.Client, body: dict[str, Any], expected: dict[str, list[int]]
) -> None:
    """PUT sets what it names (code 0 or absent: the default) and resets every other
    trigger to its default at probability 0; it answers the triggers, as GET does."""
    everything = {name: {"ErrorCode": 421, "Probability": 50} for name in DEFAULTS}
    assert api.put("/api/v1/chaos", json=everything).json() == everything
    wanted = {name: dict(trigger) for name, trigger in DEFAULTS.items()}
    for name, (code, probability) in expected.items():
        wanted[name] = {"ErrorCode": code, "Probability": probability}
    response = api.put("/api/v1/chaos", json=body)
    assert response.status_code == 200
    assert response.json() == wanted == api.get("/api/v1/chaos").json()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"Sender": {"ErrorCode": 399}}, "error code must be between 400 and 599"),
        ({"Recipient": {"ErrorCode": 600}}, "error code must be between 400 and 599"),
        ({"Sender": {"Probability": 101}}, "probability must be between 0 and 100"),
        ({"Authentication": {"Probability": -1}}, "probability must be between 0 and 100"),
        ({"Sender": {"Probability": 5.5}}, "Sender.Probability must be a whole number"),
        ({"Sender": "often"}, "Sender must be an object"),
    ],
)
def test_put_refuses_what_mailpit_refuses_and_changes_nothing(
    api: httpx.Client, body: dict[str, Any], error: str
) -> None:
    """A code outside 400-599 or a probability outside 0-100 answers 400; the triggers
    stay as they were."""
    before = {**DEFAULTS, "Recipient": {"ErrorCode": 450, "Probability": 10}}
    api.put("/api/v1/chaos", json={"Recipient": before["Recipient"]})
    response = api.put("/api/v1/chaos", json=body)
    assert (response.status_code, response.json()) == (400, {"Error": error})
    assert api.get("/api/v1/chaos").json() == before


@pytest.mark.parametrize(
    ("trigger", "attempt_on", "outcome", "hits"),
    [
        ("Sender", "plain", Outcome("mail", 452, "4.0.0 Chaos sender error"), 2),
        ("Recipient", "plain", Outcome("rcpt", 452, "4.0.0 Chaos recipient error"), 2),
        # smtplib's login tries PLAIN, then LOGIN: two AUTH commands, two hits.
        ("Authentication", "authed", Outcome("auth", 452, "4.0.0 Chaos authentication error"), 3),
    ],
)
def test_a_trigger_at_100_percent_fails_its_command(
    chaotic: RunningRelay,
    api: httpx.Client,
    trigger: str,
    attempt_on: str,
    outcome: Outcome,
    hits: int,
) -> None:
    """Sender fails MAIL FROM, Recipient RCPT TO, Authentication AUTH, with their code;
    at probability 0 nothing fails; the hits show in /metrics."""
    api.put("/api/v1/chaos", json={trigger: {"ErrorCode": 452, "Probability": 100}})
    login = {"user": USER, "password": PASSWORD} if attempt_on == "authed" else {}
    attempt = Attempt(chaotic.port(attempt_on), **login)  # type: ignore[arg-type]
    assert with_smtplib(attempt) == outcome
    again = with_aiosmtplib(attempt)
    assert (again.stage, again.code) == (outcome.stage, outcome.code)
    api.put("/api/v1/chaos", json={trigger: {"ErrorCode": 452, "Probability": 0}})
    assert with_smtplib(attempt).stage == "done"
    stage = {"Sender": "mail", "Recipient": "rcpt", "Authentication": "auth"}[trigger]
    labels = f'leg="smtp",rule="mailpit-{trigger.lower()}",stage="{stage}"'
    sample = f"relay_chaos_hits_total{{{labels}}} {hits}.0"
    assert sample in api.get("/metrics").text.splitlines()


def test_rules_are_added_listed_and_removed(chaotic: RunningRelay, api: httpx.Client) -> None:
    """POST answers 201 with the rule (its id, source, seed, counters); GET lists them in
    order; DELETE {ID} removes one (then 404); DELETE removes all."""
    first = api.post("/api/v1/chaos/rules", json={"stage": "rcpt", "first": 1})
    assert first.status_code == 201
    rule = first.json()
    assert (rule["source"], rule["stage"], rule["code"], rule["hits"]) == ("api", "rcpt", 451, 0)
    second = add_rule(
        chaotic, stage="mail", match={"sender": "*@x.example"}, probability=25, seed=3
    )
    assert second["seed"] == 3 and second["match"]["sender"] == "*@x.example"
    listed = api.get("/api/v1/chaos/rules").json()["rules"]
    assert [r["id"] for r in listed] == [rule["id"], second["id"]]
    assert api.delete(f"/api/v1/chaos/rules/{rule['id']}").text == "ok"
    gone = api.delete(f"/api/v1/chaos/rules/{rule['id']}")
    assert (gone.status_code, gone.json()) == (404, {"Error": "no such rule"})
    assert api.delete("/api/v1/chaos/rules/nine").status_code == 404
    assert api.delete("/api/v1/chaos/rules").text == "ok"
    assert api.get("/api/v1/chaos/rules").json() == {"rules": []}


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"stage": "rcpt", "code": 250}, "code: expected a reply code from 400 to 599, got 250"),
        ({"stage": "soon"}, "stage: expected one of '', 'connect'"),
        (
            {"stage": "mail", "match": {"recipient": "*@x.example"}},
            "match.recipient: expected a stage from rcpt on",
        ),
        ({"stage": "helo", "match": {"user": "app"}}, "match.user: expected a stage from auth on"),
        (
            {"stage": "rcpt", "match": {"header": "X-A: b"}},
            "match.header: expected a stage from data-end on",
        ),
        (
            {"stage": "data-end", "match": {"header": "no colon"}},
            'match.header: expected "Name: pattern"',
        ),
        (
            {"stage": "rcpt", "first": 1, "every": 2},
            "first: expected at most one of first, every and probability",
        ),
        ({"stage": "rcpt", "probability": 120}, "probability: expected a percentage from 0 to 100"),
        (
            {"stage": "rcpt", "action": "refused"},
            "action: expected one of reply, delay, disconnect on the smtp leg",
        ),
        (
            {"stage": "rcpt", "action": "delay"},
            "delay: expected seconds greater than 0 for a delay rule",
        ),
        (
            {"stage": "rcpt", "enhanced": "5.1.1"},
            "enhanced: expected an enhanced code of the reply code's class",
        ),
        ({"leg": "delivery", "stage": "rcpt"}, "stage: expected no stage on the delivery leg"),
        (
            {"leg": "delivery", "action": "disconnect"},
            "action: expected one of reply, refused, timeout",
        ),
        (
            {"leg": "delivery", "match": {"listener": "smtp"}},
            "match.listener: expected sender, recipient or destination",
        ),
        (
            {"stage": "rcpt", "match": {"destination": "relay:x"}},
            "match.destination: expected no destination on the smtp leg",
        ),
        ({"stage": "rcpt", "when": "always"}, "when: expected a known key"),
        (
            {"stage": "rcpt", "match": {"recipient": "a b"}},
            "match.recipient: expected a domain",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_the_key_and_what_was_expected(
    api: httpx.Client, rule: dict[str, Any], error: str
) -> None:
    """400 naming the key and what it should be; no rule is added."""
    response = api.post("/api/v1/chaos/rules", json=rule)
    assert response.status_code == 400
    assert error in response.json()["Error"]
    assert api.get("/api/v1/chaos/rules").json() == {"rules": []}


def test_a_rule_post_must_be_json_from_this_site(api: httpx.Client) -> None:
    """Like every POST of the API: 415 unless JSON, 403 from another site."""
    form = api.post("/api/v1/chaos/rules", content=b"stage=rcpt")
    assert form.status_code == 415
    other = api.post(
        "/api/v1/chaos/rules", json={"stage": "rcpt"}, headers={"Origin": "https://evil.example"}
    )
    assert other.status_code == 403


def test_hits_show_in_the_api_and_in_metrics(chaotic: RunningRelay, api: httpx.Client) -> None:
    """A rule's matches and hits, in GET /api/v1/chaos/rules and relay_chaos_hits_total."""
    rule = add_rule(chaotic, stage="rcpt", every=2, match={"recipient": "*@count.example"})
    with chaotic.smtp("plain") as client:
        client.ehlo()
        client.mail("a@example.com")
        codes = [client.rcpt(f"u{i}@count.example")[0] for i in range(5)]
    assert codes == [250, 451, 250, 451, 250]
    [listed] = api.get("/api/v1/chaos/rules").json()["rules"]
    assert (listed["matched"], listed["hits"]) == (5, 2)
    sample = f'relay_chaos_hits_total{{leg="smtp",rule="{rule["id"]}",stage="rcpt"}} 2.0'
    assert sample in api.get("/metrics").text.splitlines()


def test_rules_from_relay_toml_are_listed_and_can_be_removed(tmp_path: Path) -> None:
    """A [[chaos.rule]] of the file is rule 1, source "config"; DELETE removes it too."""
    rule = ChaosRuleConfig(stage="rcpt", code=452, match=ChaosMatch(recipient="*@toml.example"))
    chaos = ChaosConfig(enabled=True, rule=(rule,))
    relay = RunningRelay(
        make_config(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", chaos=chaos)
    ).start()
    try:
        with httpx.Client(base_url=relay.web_url) as api:
            [listed] = api.get("/api/v1/chaos/rules").json()["rules"]
            assert (listed["id"], listed["source"], listed["code"]) == (1, "config", 452)
            with relay.smtp() as client:
                client.ehlo()
                client.mail("a@example.com")
                assert client.rcpt("u@toml.example")[0] == 452
                assert api.delete("/api/v1/chaos/rules/1").text == "ok"
                assert client.rcpt("u@toml.example")[0] == 250
    finally:
        relay.stop()


def test_chaos_answers_have_the_shapes_the_document_gives(
    chaotic: RunningRelay, api: httpx.Client
) -> None:
    """GET /api/v1/chaos and /api/v1/chaos/rules answer exactly their OpenAPI schemas."""
    add_rule(chaotic, stage="rcpt", probability=10)
    add_rule(chaotic, leg="delivery", action="timeout", match={"destination": "relay:up"})
    for path in ("/api/v1/chaos", "/api/v1/chaos/rules"):
        answer = DOCUMENT["paths"][path]["get"]["responses"]["200"]
        schema = answer["content"]["application/json"]["schema"]
        assert problems(api.get(path).json(), schema, path) == []
