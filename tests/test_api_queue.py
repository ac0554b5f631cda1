"""relay's own queue API on both backends, in-process: the queue with filters and groups,
actions on one recipient, a message's recipients, a list or a filter, a message's
deliveries, the API guard; and release refusing bad addresses."""

from __future__ import annotations

import json

import pytest

from relay import ids as message_ids
from relay.config import RouteConfig, WebConfig
from relay.status import Status
from relay.store import Store
from tests.test_queue_view import seeded
from tests.test_web_queue import ids_of, statuses
from tests.webkit import add, web_client

JSON_POST = {"content-type": "application/json"}
QUEUE_FIELDS = {
    "ID", "Message", "Address", "Route", "Destination", "Status", "Attempts", "NextAttempt",
    "LastCode", "LastEnhanced", "LastText", "ErrorGroup", "Updated", "Received", "MailFrom",
    "Subject", "Actions",
}  # fmt: skip
EVERYONE = {
    "a1@x.example", "a2@y.example", "b1@slow.example", "b2@slow.example", "b3@other.example",
    "c2@z.example",
}  # fmt: skip


def addresses(body: dict[str, object]) -> set[str]:
    """The recipient addresses in a queue answer."""
    rows = body["recipients"]
    assert isinstance(rows, list)
    return {r["Address"] for r in rows}


async def test_queue_lists_deferred_failed_and_held_with_counts(store: Store) -> None:
    """GET /api/v1/queue: every recipient needing a look, newest first, each with its
    message, destination, last reply and error group; counts per state; the summary."""
    ids = await seeded(store)
    async with web_client(store) as web:
        body = (await web.get("/api/v1/queue")).json()
    assert (body["total"], body["start"], body["count"]) == (6, 0, 6)
    assert addresses(body) == EVERYONE
    assert body["counts"] == {"deferred": 3, "failed": 2, "held": 1}
    assert body["summary"] == {"queued": 0, "sending": 0, "deferred": 3, "failed": 2, "held": 1}
    rows = {r["Address"]: r for r in body["recipients"]}
    assert [r["ID"] for r in body["recipients"]] == sorted(rows[a]["ID"] for a in rows)[::-1]
    grey = rows["b1@slow.example"]
    assert set(grey) == QUEUE_FIELDS
    assert (grey["Message"], grey["Destination"], grey["Route"]) == (
        ids["mx"],
        "relay:mx:slow.example",
        "relay:mx",
    )
    assert (grey["Status"], grey["Attempts"], grey["LastCode"], grey["LastEnhanced"]) == (
        "deferred",
        1,
        451,
        "4.7.1",
    )
    assert grey["ErrorGroup"] == "451|4.7.1|greylisted for # seconds"
    assert grey["NextAttempt"] == "1970-01-12T13:51:40.000Z"  # NOW + 300
    assert grey["Actions"] == ["retry", "hold", "cancel"]
    assert rows["a1@x.example"]["NextAttempt"] is None
    assert rows["b3@other.example"]["Actions"] == ["release", "cancel"]
    assert rows["b3@other.example"]["NextAttempt"] is None  # held: no attempt is planned


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"a1@x.example", "a2@y.example"}),
        ({"destination": "relay:mx:slow.example"}, {"b1@slow.example", "b2@slow.example"}),
        ({"domain": "SLOW.example."}, {"b1@slow.example", "b2@slow.example"}),
        ({"domain": "x.example"}, {"a1@x.example"}),
        ({"error": "451|4.7.1|greylisted for # seconds"}, {"b1@slow.example", "b2@slow.example"}),
        ({"error": "|4.4.1|connection refused: [errno #", "status": "held"}, {"b3@other.example"}),
        ({"search": "invoice"}, {"c2@z.example"}),
        ({"search": "rejected a1"}, {"a1@x.example"}),
        ({"status": "", "domain": "", "search": ""}, EVERYONE),
    ],
)
async def test_queue_filters(store: Store, params: dict[str, str], expected: set[str]) -> None:
    """Status, destination, recipient domain, error group and search narrow the queue."""
    await seeded(store)
    async with web_client(store) as web:
        body = (await web.get("/api/v1/queue", params=params)).json()
    assert addresses(body) == expected and body["total"] == len(expected)


async def test_queue_pages_with_start_and_limit(sqlite_store: Store) -> None:
    """start and limit page through the queue; total stays the whole match."""
    await seeded(sqlite_store)
    async with web_client(sqlite_store) as web:
        first = (await web.get("/api/v1/queue", params={"limit": 4})).json()
        rest = (await web.get("/api/v1/queue", params={"start": 4, "limit": 4})).json()
    assert (first["count"], rest["count"], rest["total"], rest["start"]) == (4, 2, 6, 4)
    assert addresses(first) | addresses(rest) == EVERYONE


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/queue", {"status": "delivered"}, "status must be one of deferred, failed, held"),
        ("/api/v1/queue", {"error": "nonsense"}, "error must be an error group"),
        ("/api/v1/queue", {"limit": "0"}, "limit must be 1 or more"),
        ("/api/v1/queue", {"start": "x"}, "start must be a whole number"),
        ("/api/v1/queue/groups", {"by": "size"}, "by must be one of destination, error"),
    ],
)
async def test_bad_queue_parameters_are_400(
    sqlite_store: Store, path: str, params: dict[str, str], message: str
) -> None:
    """A bad filter or paging value answers 400 with a JSON error naming it."""
    async with web_client(sqlite_store) as web:
        response = await web.get(path, params=params)
    assert response.status_code == 400 and message in response.json()["Error"]


async def test_groups_by_destination_and_by_error(sqlite_store: Store) -> None:
    """GET /api/v1/queue/groups: counts by state per destination or error, largest first,
    within the other filters."""
    await seeded(sqlite_store)
    async with web_client(sqlite_store) as web:
        by_destination = (await web.get("/api/v1/queue/groups")).json()
        by_error = (await web.get("/api/v1/queue/groups", params={"by": "error"})).json()
        failed = (
            await web.get("/api/v1/queue/groups", params={"by": "error", "status": "failed"})
        ).json()
    destinations = {g["Key"]: g for g in by_destination["groups"]}
    assert by_destination["by"] == "destination"
    assert set(destinations) == {
        "relay:smarthost", "relay:mx:slow.example", "relay:mx:other.example", "relay:backup",
    }  # fmt: skip
    slow = destinations["relay:mx:slow.example"]
    assert (slow["Count"], slow["Deferred"], slow["Failed"], slow["Held"]) == (2, 2, 0, 0)
    assert slow["NextAttempt"] == "1970-01-12T13:47:40.000Z"  # NOW + 60, the earliest
    errors = {g["Key"]: g for g in by_error["groups"]}
    unknown = errors["550|5.1.1|<address>: recipient address rejected"]
    assert (unknown["Count"], unknown["Code"], unknown["Enhanced"]) == (2, 550, "5.1.1")
    assert "Recipient address rejected" in unknown["Sample"]
    assert [g["Key"] for g in failed["groups"]] == [
        "550|5.1.1|<address>: recipient address rejected"
    ]


@pytest.mark.parametrize(
    ("action", "body", "changed", "after"),
    [
        ("retry", {"IDs": ["a1@x.example", "b1@slow.example", "b3@other.example"]}, 2,
         {"a1@x.example": Status.QUEUED, "b1@slow.example": Status.QUEUED,
          "b3@other.example": Status.HELD}),
        ("hold", {"Filter": {"domain": "slow.example"}}, 2,
         {"b1@slow.example": Status.HELD, "b2@slow.example": Status.HELD}),
        ("cancel", {"Filter": {"error": "|4.4.1|connection refused: [errno #"}}, 2,
         {"b3@other.example": Status.CANCELLED, "c2@z.example": Status.CANCELLED}),
        ("release", {"Filter": {}}, 1, {"b3@other.example": Status.QUEUED}),
        ("retry", {"Filter": {"status": "failed", "search": "a2"}}, 1,
         {"a2@y.example": Status.QUEUED, "a1@x.example": Status.FAILED}),
    ],
)  # fmt: skip
async def test_bulk_actions_on_ids_or_a_filter(
    store: Store, action: str, body: dict[str, object], changed: int, after: dict[str, Status]
) -> None:
    """POST /api/v1/queue/{Action} acts on the listed recipients, or on all a Filter
    matches, where the action applies; the others stay as they were."""
    ids = await seeded(store)
    numbers = await ids_of(store, ids)
    if "IDs" in body:
        body = {"IDs": [numbers[a] for a in body["IDs"]]}  # type: ignore[attr-defined]
    before = await statuses(store, ids)
    async with web_client(store) as web:
        response = await web.post(f"/api/v1/queue/{action}", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"Changed": changed}
    assert await statuses(store, ids) == {**before, **after}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/v1/queue/retry", {}, 400, "give either IDs"),
        ("/api/v1/queue/retry", {"IDs": [1], "Filter": {}}, 400, "give either IDs"),
        ("/api/v1/queue/retry", {"IDs": ["1"]}, 400, "IDs must be an array of recipient IDs"),
        ("/api/v1/queue/retry", {"IDs": [True]}, 400, "IDs must be an array of recipient IDs"),
        ("/api/v1/queue/retry", {"IDs": list(range(10_001))}, 400, "at most 10000 IDs"),
        ("/api/v1/queue/retry", {"Filter": []}, 400, "Filter must be an object"),
        ("/api/v1/queue/retry", {"Filter": {"status": "sent"}}, 400, "status must be one of"),
        ("/api/v1/queue/retry", {"Filter": {"domain": 5}}, 400, "domain must be a string"),
        ("/api/v1/queue/explode", {"IDs": [1]}, 404, "no such action 'explode'"),
        ("/api/v1/recipient/1/explode", {}, 404, "no such action"),
        ("/api/v1/recipient/x/retry", {}, 404, "no such recipient"),
        ("/api/v1/recipient/999999/retry", {}, 404, "no such recipient"),
        ("/api/v1/message/nope/deliveries/retry", {}, 404, "message not found"),
        ("/api/v1/message/latest/deliveries/retry", {"IDs": "all"}, 400, "IDs must be"),
    ],
)
async def test_bad_actions_are_refused_and_change_nothing(
    sqlite_store: Store, path: str, body: dict[str, object], status: int, message: str
) -> None:
    """Malformed bodies, unknown actions, recipients and messages: a clear error, no change."""
    ids = await seeded(sqlite_store)
    before = await statuses(sqlite_store, ids)
    async with web_client(sqlite_store) as web:
        response = await web.post(path, json=body)
    assert response.status_code == status and message in response.json()["Error"]
    assert await statuses(sqlite_store, ids) == before


async def test_ids_beyond_any_recipient_match_nothing(store: Store) -> None:
    """Recipient IDs too large for the database's integers are not found, never a 500."""
    ids = await seeded(store)
    before = await statuses(store, ids)
    huge = [2**40, 2**70]
    async with web_client(store) as web:
        bulk = await web.post("/api/v1/queue/retry", json={"IDs": huge})
        one = await web.post(f"/api/v1/recipient/{2**70}/retry", headers=JSON_POST)
        mine = await web.post(
            f"/api/v1/message/{ids['smarthost']}/deliveries/retry", json={"IDs": huge}
        )
    assert (bulk.json(), one.status_code, mine.json()) == ({"Changed": 0}, 404, {"Changed": 0})
    assert await statuses(store, ids) == before


@pytest.mark.parametrize(
    ("action", "address", "after"),
    [
        ("retry", "a1@x.example", Status.QUEUED),
        ("hold", "b1@slow.example", Status.HELD),
        ("release", "b3@other.example", Status.QUEUED),
        ("cancel", "c2@z.example", Status.CANCELLED),
    ],
)
async def test_one_recipient_action_answers_its_new_state(
    sqlite_store: Store, action: str, address: str, after: Status
) -> None:
    """POST /api/v1/recipient/{RID}/{Action} changes that recipient alone and answers it."""
    ids = await seeded(sqlite_store)
    rid = (await ids_of(sqlite_store, ids))[address]
    before = await statuses(sqlite_store, ids)
    async with web_client(sqlite_store) as web:
        response = await web.post(f"/api/v1/recipient/{rid}/{action}", headers=JSON_POST)
    assert response.status_code == 200, response.text
    assert (response.json()["ID"], response.json()["Status"]) == (rid, after.value)
    assert await statuses(sqlite_store, ids) == {**before, address: after}


@pytest.mark.parametrize(
    ("action", "address", "message"),
    [
        ("retry", "ok@x.example", "recipient {} is delivered: retry applies to deferred or failed"),
        ("release", "a1@x.example", "recipient {} is failed: release applies to held"),
        ("hold", "c1@x.example", "recipient {} is captured: hold applies to deferred or queued"),
    ],
)
async def test_one_recipient_action_in_the_wrong_state_is_409(
    sqlite_store: Store, action: str, address: str, message: str
) -> None:
    """An action that does not apply to the recipient's state answers 409 and says why."""
    ids = await seeded(sqlite_store)
    rid = (await ids_of(sqlite_store, ids))[address]
    before = await statuses(sqlite_store, ids)
    async with web_client(sqlite_store) as web:
        response = await web.post(f"/api/v1/recipient/{rid}/{action}", headers=JSON_POST)
    assert response.status_code == 409
    assert message.format(rid) in response.json()["Error"]
    assert await statuses(sqlite_store, ids) == before


async def test_deliveries_list_each_recipient_with_its_attempts(sqlite_store: Store) -> None:
    """GET /api/v1/message/{ID}/deliveries: status, route, last reply, next attempt, the
    actions that apply and every attempt with time, host, code, enhanced code and text."""
    ids = await seeded(sqlite_store)
    async with web_client(sqlite_store) as web:
        body = (await web.get(f"/api/v1/message/{ids['mx']}/deliveries")).json()
        missing = await web.get(f"/api/v1/message/{message_ids.new_id()}/deliveries")
    assert missing.status_code == 404
    assert (body["ID"], body["Status"]) == (ids["mx"], "deferred")
    rows = {r["Address"]: r for r in body["Recipients"]}
    assert list(rows) == ["b1@slow.example", "b2@slow.example", "b3@other.example"]
    grey = rows["b2@slow.example"]
    assert (grey["Status"], grey["Route"], grey["Attempts"]) == ("deferred", "relay:mx", 1)
    assert grey["NextAttempt"] == "1970-01-12T13:47:40.000Z"
    assert (grey["LastCode"], grey["LastEnhanced"]) == (451, "4.7.1")
    assert grey["Actions"] == ["retry", "hold", "cancel"]
    assert grey["History"] == [
        {
            "Time": "1970-01-12T13:46:40.000Z",
            "Duration": 0.1,
            "Host": "upstream.test:25",
            "Code": 451,
            "Enhanced": "4.7.1",
            "Text": "Greylisted for 60 seconds",
            "Injected": False,
        }
    ]
    assert rows["b3@other.example"]["Status"] == "held"


async def test_message_recipient_actions(store: Store) -> None:
    """POST /api/v1/message/{ID}/deliveries/{Action}: all its recipients the action applies
    to, or those in IDs; `latest` is the newest message; other messages are untouched."""
    ids = await seeded(store)
    numbers = await ids_of(store, ids)
    before = await statuses(store, ids)
    async with web_client(store) as web:
        held = await web.post(f"/api/v1/message/{ids['mx']}/deliveries/hold", headers=JSON_POST)
        one = await web.post(
            f"/api/v1/message/{ids['mx']}/deliveries/cancel",
            json={"IDs": [numbers["b1@slow.example"]]},
        )
        newest = await web.post("/api/v1/message/latest/deliveries/cancel", json={})
    assert [r.json() for r in (held, one, newest)] == [
        {"Changed": 2},
        {"Changed": 1},
        {"Changed": 1},
    ]
    assert await statuses(store, ids) == {
        **before,
        "b1@slow.example": Status.CANCELLED,
        "b2@slow.example": Status.HELD,
        "c2@z.example": Status.CANCELLED,
    }


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/v1/queue/retry", {"content-type": "application/x-www-form-urlencoded"}, 415),
        ("/api/v1/queue/retry", {**JSON_POST, "origin": "https://evil.example"}, 403),
        ("/api/v1/recipient/{rid}/retry", {"content-type": "text/plain"}, 415),
        ("/api/v1/recipient/{rid}/retry", {**JSON_POST, "sec-fetch-site": "cross-site"}, 403),
        ("/api/v1/message/{mid}/deliveries/retry", {"content-type": "multipart/form-data"}, 415),
        ("/api/v1/message/{mid}/deliveries/retry", {**JSON_POST, "origin": "http://x.evil"}, 403),
    ],
)
async def test_actions_pass_the_api_guard(
    sqlite_store: Store, path: str, headers: dict[str, str], status: int
) -> None:
    """Actions a form could send (not JSON), or from another site, are refused unchanged."""
    ids = await seeded(sqlite_store)
    rid = (await ids_of(sqlite_store, ids))["a1@x.example"]
    url = path.format(rid=rid, mid=ids["smarthost"])
    body = json.dumps({"IDs": [rid]})
    async with web_client(sqlite_store) as web:
        response = await web.post(url, content=body, headers=headers)
    assert response.status_code == status
    assert (await statuses(sqlite_store, ids))["a1@x.example"] == Status.FAILED


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/queue"),
        ("GET", "/api/v1/queue/groups"),
        ("POST", "/api/v1/queue/retry"),
        ("POST", "/api/v1/recipient/1/retry"),
        ("GET", "/api/v1/message/latest/deliveries"),
        ("POST", "/api/v1/message/latest/deliveries/retry"),
    ],
)
async def test_queue_routes_ask_for_credentials(
    sqlite_store: Store, method: str, path: str
) -> None:
    """With a token configured, every queue route needs it."""
    await seeded(sqlite_store)
    async with web_client(sqlite_store, WebConfig(token="api-token")) as web:
        refused = await web.request(method, path, json={"Filter": {}})
        allowed = await web.request(
            method, path, json={"Filter": {}}, headers={"authorization": "Bearer api-token"}
        )
    assert refused.status_code == 401
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize(
    ("to", "problem"),
    [
        (["bob@example.com\r\nRCPT TO:<x@evil.example>"], "contains a line break"),
        (["bob@example.com\n"], "contains a line break"),
        (["not an address"], "is not an address like name@example.com"),
        (["bob@exa mple.com"], "that is not a host name"),
        (["ok@example.com", "a..b@example.com"], "'a..b@example.com' has a local part"),
        ([f"{'x' * 65}@example.com"], "local part longer than 64 bytes"),
    ],
)
async def test_release_refuses_line_breaks_and_malformed_addresses(
    sqlite_store: Store, to: list[str], problem: str
) -> None:
    """POST /api/v1/message/{ID}/release answers 400 naming each bad address; nothing is
    queued, not even the good ones."""
    message_id = await add(sqlite_store, b"Subject: x\r\n\r\nx\r\n")
    async with web_client(sqlite_store) as web:
        response = await web.post(f"/api/v1/message/{message_id}/release", json={"To": to})
    assert response.status_code == 400 and problem in response.json()["Error"]
    row = await sqlite_store.messages.get(message_id)
    assert row is not None and [r.status for r in row.recipients] == ["captured"]


async def test_release_takes_named_addresses(sqlite_store: Store) -> None:
    """`Name <a@b>` and `<a@b>` are read as a@b, as Mailpit reads them, and queued."""
    message_id = await add(sqlite_store, b"Subject: x\r\n\r\nx\r\n")
    relay_all = (RouteConfig(match="*", action="relay", upstream="mx"),)
    async with web_client(sqlite_store, route=relay_all) as web:
        response = await web.post(
            f"/api/v1/message/{message_id}/release",
            json={"To": ["Bob Example <bob@example.org>", " <new@example.org> "]},
        )
    assert response.status_code == 200, response.text
    row = await sqlite_store.messages.get(message_id)
    assert row is not None
    assert {r.address: r.status for r in row.recipients} == {
        "bob@example.org": Status.QUEUED,
        "new@example.org": Status.QUEUED,
    }
