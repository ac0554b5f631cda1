"""The queue API and `relay queue` against a running relay, on both backends: real
failures from a real upstream, then retry, hold, release and cancel over HTTP and from
the command line (a separate process on the same database), ending in real deliveries."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relay.status import Status
from relay.store import RecipientRow
from tests import mail
from tests.queueing import recipients, relay_config, upstream_at, wait_for_status
from tests.support import RunningRelay
from tests.test_capture import send
from tests.upstream import RCPT_451, RCPT_550, Upstream

DONE = "ok@x.example"
FAILED = "failed@x.example"
LATE = "late@y.example"
LATER = "later@y.example"
POLL = 0.2
"""The server's fallback look at the queue: how a change made by the CLI reaches it."""

pytestmark = pytest.mark.slow


@dataclass
class Live:
    """A running relay whose one message has a delivered, a failed and two deferred
    recipients, the upstream that answered, and a config file for the CLI."""

    relay: RunningRelay
    upstream: Upstream
    message_id: str
    ids: dict[str, int]
    config_file: Path

    def statuses(self) -> dict[str, str]:
        """Each recipient's status now."""
        rows = self.relay.call(recipients(self.relay.relay.store, self.message_id))
        return {a: r.status for a, r in rows.items()}

    def wait(self, statuses: dict[str, Status]) -> dict[str, RecipientRow]:
        """Wait (on the store's events) until the recipients have these statuses."""
        return self.relay.call(
            wait_for_status(self.relay.relay.store, self.message_id, statuses), timeout=60
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m relay queue ARGS --config <this relay's config>`, as a process."""
        return subprocess.run(
            [sys.executable, "-m", "relay", "queue", *args, "--config", str(self.config_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    """A relay on `db_url` relaying to a scripted upstream, after one message settled."""
    with Upstream().start() as upstream:
        upstream.script(FAILED, RCPT_550)
        upstream.script(LATE, RCPT_451)
        upstream.script(LATER, RCPT_451)
        config = relay_config(
            db_url,
            {"smarthost": upstream_at(upstream.port)},
            retry_schedule=(3600.0,),
            poll_interval=POLL,
        )
        config_file = tmp_path / "relay-cli.toml"
        config_file.write_text(
            f'[storage]\nurl = "{db_url}"\n\n[delivery]\npoll_interval = {POLL}\n'
        )
        relay = RunningRelay(config).start()
        try:
            message_id = send(relay, mail.plain(), [DONE, FAILED, LATE, LATER])
            live = Live(relay, upstream, message_id, {}, config_file)
            rows = live.wait(
                {
                    DONE: Status.DELIVERED,
                    FAILED: Status.FAILED,
                    LATE: Status.DEFERRED,
                    LATER: Status.DEFERRED,
                }
            )
            live.ids = {a: r.id for a, r in rows.items()}
            yield live
        finally:
            relay.stop()


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    """An HTTP client for the running relay."""
    with httpx.Client(base_url=live.relay.web_url, timeout=30) as client:
        yield client


def test_api_shows_real_failures_and_their_attempts(live: Live, api: httpx.Client) -> None:
    """The queue, its groups and the message's deliveries show what the upstream answered:
    host, code, enhanced code, text and the next attempt."""
    queue = api.get("/api/v1/queue").json()
    assert {r["Address"]: r["Status"] for r in queue["recipients"]} == {
        FAILED: "failed",
        LATE: "deferred",
        LATER: "deferred",
    }
    failed = api.get("/api/v1/queue", params={"status": "failed"}).json()["recipients"]
    assert [(r["Address"], r["LastCode"], r["LastEnhanced"]) for r in failed] == [
        (FAILED, 550, "5.1.1")
    ]
    later = api.get("/api/v1/queue", params={"domain": "y.example"}).json()
    assert later["total"] == 2 and {r["Destination"] for r in later["recipients"]} == {
        "relay:smarthost"
    }
    groups = api.get("/api/v1/queue/groups", params={"by": "error"}).json()["groups"]
    assert {(g["Code"], g["Count"]) for g in groups} == {(550, 1), (451, 2)}
    deliveries = api.get(f"/api/v1/message/{live.message_id}/deliveries").json()
    rows = {r["Address"]: r for r in deliveries["Recipients"]}
    assert deliveries["Status"] == "deferred"
    host = f"127.0.0.1:{live.upstream.port}"
    (attempt,) = rows[FAILED]["History"]
    assert (attempt["Host"], attempt["Code"], attempt["Enhanced"]) == (host, 550, "5.1.1")
    assert attempt["Text"] == "No such user here" and attempt["Duration"] >= 0
    assert rows[LATE]["NextAttempt"] is not None and rows[LATE]["History"][0]["Code"] == 451
    assert rows[DONE]["Status"] == "delivered" and rows[DONE]["History"][0]["Code"] == 250


def test_api_retry_of_a_suppressed_recipient_fails_at_once(live: Live, api: httpx.Client) -> None:
    """The 5.1.1 put the address on the suppression list: an operator's retry fails it
    again at once, saying so, without contacting the upstream."""
    listed = api.get("/api/v1/suppressions").json()
    assert FAILED in json.dumps(listed)
    response = api.post(f"/api/v1/recipient/{live.ids[FAILED]}/retry", json={})
    assert response.status_code == 200, response.text
    row = live.wait({FAILED: Status.FAILED})[FAILED]
    assert "suppressed since" in (row.last_text or ""), row
    assert live.upstream.delivered_to(FAILED) == 0


def test_api_retry_of_one_recipient_is_delivered(live: Live, api: httpx.Client) -> None:
    """Once its address is taken off the suppression list, retrying the failed recipient
    sends it again to the upstream, which takes it now; its deliveries then show both
    attempts; retrying it again is a 409."""
    assert api.delete(f"/api/v1/suppressions/{FAILED}").status_code in (200, 204)
    response = api.post(f"/api/v1/recipient/{live.ids[FAILED]}/retry", json={})
    assert response.status_code == 200, response.text
    assert response.json()["Status"] in ("queued", "sending", "delivered")
    live.wait({FAILED: Status.DELIVERED})
    assert live.upstream.delivered_to(FAILED) == 1
    deliveries = api.get(f"/api/v1/message/{live.message_id}/deliveries").json()
    (row,) = [r for r in deliveries["Recipients"] if r["Address"] == FAILED]
    assert [a["Code"] for a in row["History"]] == [550, 250] and row["Attempts"] == 2
    again = api.post(f"/api/v1/recipient/{live.ids[FAILED]}/retry", json={})
    assert again.status_code == 409


def test_api_hold_release_and_cancel_in_bulk(live: Live, api: httpx.Client) -> None:
    """Hold everything deferred by filter, cancel one of the message's recipients, release
    a list: the released one is delivered, the cancelled one never is."""
    held = api.post("/api/v1/queue/hold", json={"Filter": {"status": "deferred"}})
    assert held.json() == {"Changed": 2}
    assert api.get("/api/v1/queue", params={"status": "held"}).json()["total"] == 2
    cancelled = api.post(
        f"/api/v1/message/{live.message_id}/deliveries/cancel", json={"IDs": [live.ids[LATER]]}
    )
    assert cancelled.json() == {"Changed": 1}
    released = api.post("/api/v1/queue/release", json={"IDs": [live.ids[LATE], live.ids[LATER]]})
    assert released.json() == {"Changed": 1}
    live.wait({LATE: Status.DELIVERED})
    assert live.statuses()[LATER] == Status.CANCELLED
    assert live.upstream.delivered_to(LATE) == 1 and live.upstream.delivered_to(LATER) == 0


def test_cli_retry_is_delivered_by_the_running_server(live: Live) -> None:
    """`relay queue retry ID` in another process: the server's worker finds the recipient
    due at its next look at the queue and delivers it to the upstream."""
    result = live.cli("retry", str(live.ids[LATE]))
    assert result.returncode == 0, result.stderr
    assert "retried 1 recipient" in result.stdout and "poll_interval (0.2 s)" in result.stdout
    live.wait({LATE: Status.DELIVERED})
    assert live.upstream.delivered_to(LATE) == 1
    assert live.statuses()[LATER] == Status.DEFERRED


def test_cli_lists_groups_and_shows(live: Live) -> None:
    """list, groups and show read the server's database: JSON for scripts, tables for
    people; an empty match exits 1."""
    listed = live.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["total"] == 3
    assert {r["address"]: r["status"] for r in body["recipients"]} == {
        FAILED: "failed",
        LATE: "deferred",
        LATER: "deferred",
    }
    table = live.cli("list", "--status", "failed")
    assert table.returncode == 0 and FAILED in table.stdout and LATE not in table.stdout
    assert "550 5.1.1 No such user here" in table.stdout and "1-1 of 1" in table.stdout
    assert live.cli("list", "--domain", "nowhere.example").returncode == 1
    groups = json.loads(live.cli("groups", "--by", "error", "--json").stdout)
    assert {(g["code"], g["count"]) for g in groups} == {(550, 1), (451, 2)}
    shown = json.loads(live.cli("show", live.message_id, "--json").stdout)
    rows = {r["address"]: r for r in shown["recipients"]}
    assert shown["status"] == "deferred" and rows[DONE]["status"] == "delivered"
    assert rows[FAILED]["history"][0]["code"] == 550
    assert rows[FAILED]["history"][0]["host"] == f"127.0.0.1:{live.upstream.port}"
    text = live.cli("show", live.message_id).stdout
    assert live.message_id in text and "451 4.3.0" in text and "TRIES" in text


def test_cli_hold_release_and_cancel(live: Live) -> None:
    """hold --all with a filter, cancel by recipient, release by message ID: the released
    recipient is delivered by the server; acting again on a finished one exits 1."""
    held = live.cli("hold", "--all", "--domain", "y.example")
    assert held.returncode == 0 and "held 2 recipients" in held.stdout
    listed = json.loads(live.cli("list", "--status", "held", "--json").stdout)["recipients"]
    assert {(r["address"], r["next_attempt_at"]) for r in listed} == {(LATE, None), (LATER, None)}
    assert live.cli("cancel", str(live.ids[LATER])).returncode == 0
    released = live.cli("release", live.message_id, "--json")
    assert released.returncode == 0
    assert json.loads(released.stdout) == {"action": "release", "changed": 1, "not_found": []}
    live.wait({LATE: Status.DELIVERED})
    assert live.statuses()[LATER] == Status.CANCELLED
    again = live.cli("cancel", str(live.ids[LATE]))
    assert again.returncode == 1 and "nothing changed" in again.stderr
