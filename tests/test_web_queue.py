"""The queue page in-process on both backends: groups, filters, per-row, selected and
filter-wide actions with their confirmation, the live fragment and the navigation count."""

from __future__ import annotations

import re
import types

import httpx
import pytest

from relay.config import UpstreamConfig
from relay.status import Status
from relay.store import Store
from tests.queueing import recipients
from tests.test_queue_view import seeded
from tests.webkit import csrf_token, web_client

SMARTHOST = types.MappingProxyType({"smarthost": UpstreamConfig(host="smtp.test", port=587)})


def shown(page: httpx.Response) -> set[str]:
    """The recipient addresses listed in the queue table."""
    return set(re.findall(r'class="addr">([^<]+)</a>', page.text))


async def ids_of(store: Store, ids: dict[str, str]) -> dict[str, int]:
    """Recipient ids by address for the seeded messages."""
    found: dict[str, int] = {}
    for message_id in ids.values():
        found.update({a: r.id for a, r in (await recipients(store, message_id)).items()})
    return found


async def statuses(store: Store, ids: dict[str, str]) -> dict[str, str]:
    """Recipient statuses by address for the seeded messages."""
    found: dict[str, str] = {}
    for message_id in ids.values():
        found.update({a: r.status for a, r in (await recipients(store, message_id)).items()})
    return found


async def test_queue_page_shows_groups_rows_and_counts(store: Store) -> None:
    """Groups by destination (with the upstream's address) and by error, each recipient
    with its last reply and actions, and the deferred+failed count in the navigation."""
    await seeded(store)
    async with web_client(store, upstream=SMARTHOST) as web:
        page = await web.get("/queue")
    assert page.status_code == 200
    text = page.text
    assert shown(page) == {
        "a1@x.example",
        "a2@y.example",
        "b1@slow.example",
        "b2@slow.example",
        "b3@other.example",
        "c2@z.example",
    }
    assert '<b>smarthost</b></a> <span class="meta">upstream smtp.test:587</span>' in text
    assert '<b>slow.example</b></a> <span class="meta">direct, to its MX hosts</span>' in text
    assert "upstream not in the configuration" in text  # relay:backup
    assert "2 failed" in text and "2 deferred" in text and "1 held" in text
    assert '<code class="code-5">550 5.1.1</code>' in text
    assert "Greylisted for" in text and "connection refused" in text
    assert re.search(r'id="queue-attention">5<', text)
    assert 'data-status-count="failed">2<' in text
    assert 'value="retry:' in text and 'value="release:' in text
    assert "Retry all 5…" in text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"a1@x.example", "a2@y.example"}),
        ({"destination": "relay:mx:slow.example"}, {"b1@slow.example", "b2@slow.example"}),
        ({"error": "451|4.7.1|greylisted for # seconds"}, {"b1@slow.example", "b2@slow.example"}),
        ({"error": "|4.4.1|connection refused: [errno #", "status": "held"}, {"b3@other.example"}),
        ({"q": "a2@"}, {"a2@y.example"}),
    ],
)
async def test_queue_filters_in_the_url(
    store: Store, params: dict[str, str], expected: set[str]
) -> None:
    """Status, destination, error group and search in the URL narrow the list."""
    await seeded(store)
    async with web_client(store) as web:
        page = await web.get("/queue", params=params)
    assert page.status_code == 200
    assert shown(page) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "delivered"}, "status must be one of deferred, failed, held"),
        ({"error": "nonsense"}, "error must be an error group"),
        ({"page": "two"}, "page must be a whole number"),
    ],
)
async def test_queue_bad_parameters_are_400(
    sqlite_store: Store, params: dict[str, str], message: str
) -> None:
    """A bad filter value is a clear 400, never a 500."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/queue", params=params)
    assert page.status_code == 400 and message in page.text


async def test_empty_queue_says_so(sqlite_store: Store) -> None:
    """With nothing deferred, failed or held, the page says nothing needs attention."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/queue")
    assert "Nothing needs attention" in page.text
    assert re.search(r'class="badge zero" id="queue-attention">0<', page.text)


@pytest.mark.parametrize(
    ("act", "address", "after"),
    [
        ("retry", "a1@x.example", Status.QUEUED),
        ("hold", "b1@slow.example", Status.HELD),
        ("cancel", "b2@slow.example", Status.CANCELLED),
        ("release", "b3@other.example", Status.QUEUED),
    ],
)
async def test_one_recipient_action(store: Store, act: str, address: str, after: Status) -> None:
    """A row's button acts on that recipient alone and goes back to the page it came from."""
    ids = await seeded(store)
    rid = (await ids_of(store, ids))[address]
    before = await statuses(store, ids)
    async with web_client(store) as web:
        token = await csrf_token(web)
        done = await web.post(
            "/queue/action",
            data={"csrf": token, "act": f"{act}:{rid}", "next": "/queue?status=failed"},
        )
    assert done.status_code == 303 and done.headers["location"] == "/queue?status=failed"
    now = await statuses(store, ids)
    assert now[address] == after
    assert {a: s for a, s in now.items() if a != address} == {
        a: s for a, s in before.items() if a != address
    }


async def test_retry_a_selection(store: Store) -> None:
    """Selected rows are retried; a held one in the selection is left held."""
    ids = await seeded(store)
    rid = await ids_of(store, ids)
    async with web_client(store) as web:
        token = await csrf_token(web)
        done = await web.post(
            "/queue/action",
            data={
                "csrf": token,
                "action": "retry",
                "ids": [rid["a1@x.example"], rid["b1@slow.example"], rid["b3@other.example"]],
            },
        )
    assert done.status_code == 303 and done.headers["location"] == "/queue"
    now = await statuses(store, ids)
    assert (now["a1@x.example"], now["b1@slow.example"]) == (Status.QUEUED, Status.QUEUED)
    assert (now["a2@y.example"], now["b3@other.example"]) == (Status.FAILED, Status.HELD)


async def test_retry_all_matching_asks_then_retries_only_the_filtered(store: Store) -> None:
    """Retry-all shows how many first; confirmed, it retries exactly the filtered ones."""
    ids = await seeded(store)
    form = {"action": "retry", "scope": "all", "destination": "relay:mx:slow.example"}
    before = await statuses(store, ids)
    async with web_client(store) as web:
        token = await csrf_token(web)
        asked = await web.post("/queue/action", data={**form, "csrf": token})
        assert asked.status_code == 200 and "Retry 2 deliveries?" in asked.text
        assert await statuses(store, ids) == before
        done = await web.post("/queue/action", data={**form, "csrf": token, "confirm": "yes"})
    assert done.status_code == 303
    now = await statuses(store, ids)
    assert (now["b1@slow.example"], now["b2@slow.example"]) == (Status.QUEUED, Status.QUEUED)
    assert (now["a1@x.example"], now["c2@z.example"]) == (Status.FAILED, Status.DEFERRED)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"action": "retry", "ids": ["1"]}, 403),
        ({"action": "retry", "ids": ["1"], "csrf": "forged.token"}, 403),
        ({"action": "explode", "ids": ["1"], "csrf": "TOKEN"}, 400),
        ({"act": "retry:x", "csrf": "TOKEN"}, 400),
        ({"action": "retry", "ids": ["1; drop"], "csrf": "TOKEN"}, 400),
    ],
)
async def test_queue_action_refuses_bad_posts(
    sqlite_store: Store, data: dict[str, object], status: int
) -> None:
    """Actions need this page's CSRF token and well-formed values."""
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        if data.get("csrf") == "TOKEN":
            data = {**data, "csrf": token}
        response = await web.post("/queue/action", data=data)  # type: ignore[arg-type]
    assert response.status_code == status


async def test_queue_actions_refuse_get(sqlite_store: Store) -> None:
    """The action route changes nothing on GET."""
    async with web_client(sqlite_store) as web:
        assert (await web.get("/queue/action")).status_code == 405


async def test_live_fragment_is_the_page_body(store: Store) -> None:
    """The live fragment renders groups and rows under the filter, with forms going back
    to the page (not to the fragment)."""
    await seeded(store)
    async with web_client(store) as web:
        live = await web.get("/queue/live", params={"status": "held", "next": "/queue?status=held"})
    assert live.status_code == 200 and "<html" not in live.text
    assert shown(live) == {"b3@other.example"}
    assert 'name="next" value="/queue?status=held"' in live.text


async def test_navigation_counts_deferred_and_failed(store: Store) -> None:
    """Every page's Queue link carries the number of deferred and failed recipients."""
    await seeded(store)
    async with web_client(store) as web:
        page = await web.get("/")
        nav = await web.get("/live/nav")
    assert re.search(r'id="queue-attention">5<', page.text)
    assert 'data-queue-attention="5"' in nav.text


def test_ages_read_like_people_write_them() -> None:
    """Durations on the page use at most two units."""
    from web.rendering import span

    assert [span(s) for s in (5, 59, 60, 3599, 3600, 3660, 86400, 90000, -3)] == [
        "5 s", "59 s", "1 min", "59 min", "1 h", "1 h 1 min", "1 d", "1 d 1 h", "0 s",
    ]  # fmt: skip


async def test_groups_show_age_and_next_try(sqlite_store: Store) -> None:
    """A group shows how old its oldest message is and when the next retry is due (the
    seeded times are long past: ages in days, retries due now)."""
    await seeded(sqlite_store)
    async with web_client(sqlite_store) as web:
        page = await web.get("/queue")
    assert re.search(r'class="age"[^>]*>\d+ d( \d+ h)?<', page.text)
    assert "due now" in page.text
