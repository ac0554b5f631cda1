"""The queue's shape (Postfix's qshape) in the store, `relay queue shape`, the API and the
queue page; and paused destinations shown wherever destinations are."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from relay.config.limits import DestinationLimits
from relay.status import Status
from relay.store import NewRecipient, Store
from relay.store.destinations import Outcome
from relay.store.shape import COLUMNS, bucket_of
from tests.queueing import new_message, open_store
from tests.test_cli_queue import config_file, in_process
from tests.webkit import web_client

MINUTE = 60.0
PUSHBACK = "421 4.7.0 Too many connections from your address"
# (route, minutes since the message arrived, its recipients' states)
MAIL = [
    ("relay:smarthost", 2, [Status.QUEUED, Status.QUEUED]),
    ("relay:smarthost", 7, [Status.DEFERRED]),
    ("relay:smarthost", 30, [Status.DEFERRED, Status.HELD]),
    ("relay:smarthost", 3000, [Status.DEFERRED]),
    ("relay:mx", 12, [Status.QUEUED]),
    ("relay:mx", 90, [Status.FAILED, Status.DELIVERED]),
]
SMARTHOST = (6 - 1, 2, 1, 0, 1, 0, 0, 0, 0, 0, 1)  # T, then <5, <10, ... <1280, older
MX = (1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)


async def seed(store: Store, now: float) -> None:
    """MAIL, received that long before `now` (MX recipients at gmail.test)."""
    for route, minutes, states in MAIL:
        domain = "gmail.test" if route == "relay:mx" else "example.net"
        rcpts = [NewRecipient(f"u{i}@{domain}", route, s) for i, s in enumerate(states)]
        await store.add_message(new_message(rcpts, received_at=now - minutes * MINUTE))


async def pause(store: Store, key: str, now: float) -> None:
    """Record three push-backs in a row from `key`: its breaker pauses it for 10 minutes."""
    limits = DestinationLimits(breaker_failures=3, breaker_pause=10 * MINUTE)
    await store.queue.finish("test", [], now, [Outcome(key, PUSHBACK, limits)] * 3)


@pytest.mark.parametrize(
    ("seconds", "column"),
    [(0, "5"), (299.9, "5"), (300, "10"), (599, "10"), (40 * MINUTE, "80"),
     (1279 * MINUTE, "1280"), (1280 * MINUTE, "1280+"), (90 * 24 * 3600, "1280+")],
)  # fmt: skip
def test_each_age_falls_in_its_bucket(seconds: float, column: str) -> None:
    """The first bucket holds what is under 5 minutes old, each next one up to twice the
    last limit, the last one what is 1280 minutes old or more."""
    assert COLUMNS[bucket_of(seconds) + 1] == column


async def test_waiting_recipients_per_destination_by_age(store: Store) -> None:
    """Queued, sending and deferred recipients are counted per destination (its text form)
    in their message's age bucket, with a TOTAL row; held ones only when asked for, done
    ones never."""
    now = time.time()
    await seed(store, now)
    shape = await store.queue_shape(now)
    assert [(r.destination, r.counts) for r in shape.rows] == [
        ("relay:smarthost", SMARTHOST),
        ("relay:mx:gmail.test", MX),
    ]
    assert shape.total.counts == tuple(a + b for a, b in zip(SMARTHOST, MX, strict=True))
    held = await store.queue_shape(now, ["held"])
    assert [(r.destination, r.total) for r in held.rows] == [("relay:smarthost", 1)]
    assert (await store.queue_shape(now, ["sending"])).total.counts == (0,) * len(COLUMNS)


async def paused_database(tmp_path: Path, db_url: str) -> str:
    """A database holding MAIL with the smarthost paused; a config file naming it."""
    now = time.time()
    async with open_store(db_url) as store:
        await seed(store, now)
        await pause(store, "relay:smarthost", now)
    return config_file(tmp_path, db_url)


async def test_relay_queue_shape_prints_qshape_and_json(tmp_path: Path, db_url: str) -> None:
    """The table has qshape's columns, the TOTAL line first, destinations by size, and a
    paused destination's pause below; --json gives the same numbers."""
    config = await paused_database(tmp_path, db_url)
    done = await in_process("queue", "shape", "--config", config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert lines[1].split()[0] == "TOTAL" and lines[2].split()[0] == "relay:smarthost"
    assert [int(n) for n in lines[2].split()[1:]] == list(SMARTHOST)
    assert lines[-1].startswith("relay:smarthost: paused until ")
    assert lines[-1].endswith(f"because {PUSHBACK}")
    as_json = await in_process("queue", "shape", "--config", config, "--json", "--status", "held")
    data = json.loads(as_json.stdout)
    assert data["columns"] == list(COLUMNS) and data["statuses"] == ["held"]
    (row,) = data["destinations"]
    assert (row["destination"], row["counts"][0]) == ("relay:smarthost", 1)
    assert row["paused_because"] == PUSHBACK and row["paused_until"].endswith("Z")


async def test_relay_queue_groups_says_which_destination_is_paused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """`relay queue groups` adds "paused until …, because …" under the table, and the
    paused fields in JSON."""
    config = await paused_database(tmp_path, sqlite_url)
    done = await in_process("queue", "groups", "--config", config)
    (note,) = [line for line in done.stdout.splitlines() if "paused" in line]
    assert note.startswith("relay:smarthost: paused until ") and "(in 9m" in note
    assert note.endswith(f"because {PUSHBACK}")
    data = json.loads((await in_process("queue", "groups", "--config", config, "--json")).stdout)
    paused = {g["key"]: g["paused_because"] for g in data}
    assert paused == {"relay:smarthost": PUSHBACK, "relay:mx:gmail.test": None}


async def test_the_api_answers_the_shape_and_the_pauses(store: Store) -> None:
    """GET /api/v1/queue/shape: columns, total and rows as the store counts them, with a
    paused destination's pause; a bad status is 400; destination groups carry the pause."""
    now = time.time()
    await seed(store, now)
    await pause(store, "relay:mx:gmail.test", now)
    async with web_client(store) as web:
        answer = (await web.get("/api/v1/queue/shape")).json()
        bad = await web.get("/api/v1/queue/shape?status=delivered")
        groups = (await web.get("/api/v1/queue/groups?by=destination")).json()["groups"]
    assert answer["Columns"] == list(COLUMNS)
    assert answer["Statuses"] == ["queued", "sending", "deferred"]
    assert [(r["Destination"], r["Counts"]) for r in answer["Destinations"]] == [
        ("relay:smarthost", list(SMARTHOST)),
        ("relay:mx:gmail.test", list(MX)),
    ]
    mx = answer["Destinations"][1]
    assert mx["PausedBecause"] == PUSHBACK and mx["PausedUntil"].endswith("Z")
    assert answer["Destinations"][0]["PausedUntil"] is None
    assert bad.status_code == 400 and "status must be among" in bad.json()["Error"]
    by_key = {g["Key"]: g["PausedBecause"] for g in groups}
    assert by_key == {"relay:smarthost": None, "relay:mx:gmail.test": PUSHBACK}


async def test_the_queue_page_shows_the_shape_and_what_is_paused(store: Store) -> None:
    """The queue page has the qshape table (TOTAL, then each destination with its counts)
    and says of a paused destination until when and why, in its group too."""
    now = time.time()
    await seed(store, now)
    await pause(store, "relay:smarthost", now)
    async with web_client(store) as web:
        page = (await web.get("/queue")).text
    table = page.split('class="shape-table"')[1].split("</table>")[0]
    heads = [h.split(">")[-1] for h in table.split("</thead>")[0].split("</th>")[1:-1]]
    assert heads == list(COLUMNS)
    row = table.split('data-destination="relay:smarthost"')[1].split("</tr>")[0]
    assert [int(c.split(">")[-1]) for c in row.split("</td>")[:-1]] == list(SMARTHOST)
    assert "TOTAL" in table and 'data-destination="relay:mx:gmail.test"' in table
    assert page.count(f"because {PUSHBACK}") == 2  # the destination's group and its row
    assert "paused until " in page
