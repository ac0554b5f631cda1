"""The operator's view of the queue on both backends: error keys, groups, filters, the
list, and actions on a selection or on everything a filter matches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import inspect, select

from relay.status import Status
from relay.store import ErrorKey, NewRecipient, QueueFilter, Result, Store, migrate
from relay.store import error_key as ek
from relay.store.schema import recipient
from tests.queueing import new_message, open_store, recipients

NOW = 1_000_000.0
LEASE = 300.0


@dataclass(frozen=True)
class Outcome:
    """What the upstream answered one recipient."""

    status: Status
    code: int | None
    enhanced: str
    text: str
    retry_in: float = 600.0


async def settle(store: Store, outcomes: dict[str, Outcome], now: float = NOW) -> None:
    """Claim every due recipient and record the given outcome for each, as the worker does."""
    claims = await store.queue.claim("w", now, LEASE, 1000)
    results = []
    for c in claims:
        o = outcomes[c.address]
        results.append(
            Result(
                recipient_id=c.id,
                message_id=c.message_id,
                status=o.status,
                next_attempt_at=now + o.retry_in if o.status is Status.DEFERRED else None,
                code=o.code,
                enhanced=o.enhanced,
                text=o.text,
                host="upstream.test:25",
                started_at=now,
                duration=0.1,
            )
        )
    await store.queue.finish("w", results, now)


UNKNOWN_A = Outcome(Status.FAILED, 550, "5.1.1", "<a1@x.example>: Recipient address rejected")
UNKNOWN_B = Outcome(Status.FAILED, 550, "5.1.1", "<a2@y.example>:  Recipient address rejected")
GREY_300 = Outcome(Status.DEFERRED, 451, "4.7.1", "Greylisted for 300 seconds", retry_in=300)
GREY_60 = Outcome(Status.DEFERRED, 451, "4.7.1", "Greylisted for 60 seconds", retry_in=60)
REFUSED = Outcome(Status.DEFERRED, None, "4.4.1", "connection refused: [Errno 111]", 900)
DONE = Outcome(Status.DELIVERED, 250, "2.0.0", "OK")


async def seeded(store: Store) -> dict[str, str]:
    """Three messages whose recipients are failed, deferred, held, delivered and captured."""
    smarthost = new_message(["a1@x.example", "a2@y.example", "ok@x.example"], received_at=NOW - 50)
    mx = new_message(
        ["b1@slow.example", "b2@slow.example", "b3@other.example"],
        route="relay:mx",
        received_at=NOW - 300,
    )
    kept = new_message(
        [
            NewRecipient("c1@x.example", "capture", Status.CAPTURED),
            NewRecipient("c2@z.example", "relay:backup", Status.QUEUED),
        ],
        received_at=NOW - 10,
        raw=b"Subject: Invoice 42\r\n\r\nhi\r\n",
    )
    for new in (smarthost, mx, kept):
        await store.add_message(new)
    await settle(
        store,
        {
            "a1@x.example": UNKNOWN_A,
            "a2@y.example": UNKNOWN_B,
            "ok@x.example": DONE,
            "b1@slow.example": GREY_300,
            "b2@slow.example": GREY_60,
            "b3@other.example": REFUSED,
            "c2@z.example": REFUSED,
        },
    )
    b3 = (await recipients(store, mx.id))["b3@other.example"].id
    assert await store.actions.act_on("hold", [b3], NOW + 1) == 1
    return {"smarthost": smarthost.id, "mx": mx.id, "kept": kept.id}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("<bob@example.com>: Recipient address rejected", "<address>: recipient address rejected"),
        ("User  unknown\r\n  in table", "user unknown in table"),
        ("Greylisted for 300 seconds, see id=8F3A2", "greylisted for # seconds, see #"),
        ("Messages from 203.0.113.9 deferred (4.16.55.1)", "messages from # deferred #"),
        ("mailbox alice@corp.example is full", "mailbox <address> is full"),
        (None, ""),
        ("x" * 400, "x" * ek.KEY_LENGTH),
    ],
)
def test_error_key_normalizes_what_differs_between_recipients(text: str | None, key: str) -> None:
    """Addresses, numbers and ids are masked, case and whitespace folded, length capped."""
    assert ek.normalize(text) == key


@pytest.mark.parametrize(
    "value", ["550|5.1.1|user unknown", "|4.4.1|connection refused: #", "||", "451||a|b"]
)
def test_error_key_string_round_trips(value: str) -> None:
    """An error key survives a trip through a URL parameter."""
    assert str(ErrorKey.parse(value)) == value


@pytest.mark.parametrize("value", ["", "550", "5x0|5.1.1|text", "550;5.1.1;text"])
def test_error_key_parse_refuses_other_strings(value: str) -> None:
    """Strings that are not error keys raise ValueError."""
    with pytest.raises(ValueError, match="not an error group"):
        ErrorKey.parse(value)


async def test_results_record_the_error_key(db_url: str) -> None:
    """Each recorded reply keeps its normalised text beside it, for grouping."""
    async with open_store(db_url) as store:
        ids = await seeded(store)
        async with store.db.reader.connect() as conn:
            rows = await conn.execute(
                select(recipient.c.last_text, recipient.c.last_error_key).where(
                    recipient.c.message_id.in_(list(ids.values()))
                )
            )
            found = {text: key for text, key in rows}
    assert found == {
        None: None,
        **{o.text: ek.normalize(o.text) for o in (UNKNOWN_A, UNKNOWN_B, GREY_300, GREY_60)},
        **{o.text: ek.normalize(o.text) for o in (REFUSED, DONE)},
    }


async def test_upgrade_from_revision_0001_fills_the_error_keys(db_url: str) -> None:
    """A database from before the error keys (revision 0001) gets the column, filled in
    from the last replies, when it is upgraded; its groups are then right."""
    async with open_store(db_url) as store:
        await seeded(store)
        await store.db.downgrade("0001")
        async with store.db.reader.connect() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("recipient"))
        assert "last_error_key" not in {c["name"] for c in columns}
        await store.db.upgrade()
        assert await store.db.schema_version() == migrate.head()
        groups = {g.key: g.count for g in await store.queue_view.groups("error")}
    assert groups == {
        "550|5.1.1|<address>: recipient address rejected": 2,
        "451|4.7.1|greylisted for # seconds": 2,
        "|4.4.1|connection refused: [errno #": 2,
    }


async def test_groups_by_destination(db_url: str) -> None:
    """Deferred, failed and held recipients per upstream or MX domain, with counts and times."""
    async with open_store(db_url) as store:
        await seeded(store)
        groups = {g.key: g for g in await store.queue_view.groups("destination")}
    assert set(groups) == {
        "relay:smarthost",
        "relay:mx:slow.example",
        "relay:mx:other.example",
        "relay:backup",
    }
    smarthost = groups["relay:smarthost"]
    assert (smarthost.count, smarthost.failed, smarthost.deferred) == (2, 2, 0)
    assert smarthost.oldest == NOW - 50 and smarthost.next_attempt_at is None
    slow = groups["relay:mx:slow.example"]
    assert (slow.count, slow.deferred, slow.oldest, slow.next_attempt_at) == (
        2,
        2,
        NOW - 300,
        NOW + 60,
    )
    assert (groups["relay:mx:other.example"].held, groups["relay:mx:other.example"].count) == (
        1,
        1,
    )
    counts = [g.count for g in groups.values()]
    assert counts == sorted(counts, reverse=True)


async def test_groups_by_error(db_url: str) -> None:
    """Replies differing only in address or number fall in one group with a sample text."""
    async with open_store(db_url) as store:
        await seeded(store)
        groups = {g.key: g for g in await store.queue_view.groups("error")}
    assert set(groups) == {
        "550|5.1.1|<address>: recipient address rejected",
        "451|4.7.1|greylisted for # seconds",
        "|4.4.1|connection refused: [errno #",
    }
    unknown = groups["550|5.1.1|<address>: recipient address rejected"]
    assert (unknown.count, unknown.failed, unknown.code, unknown.enhanced) == (2, 2, 550, "5.1.1")
    assert unknown.sample in (UNKNOWN_A.text, UNKNOWN_B.text)
    refused = groups["|4.4.1|connection refused: [errno #"]
    assert (refused.count, refused.deferred, refused.held) == (2, 1, 1)


@pytest.mark.parametrize(
    ("filter_", "addresses"),
    [
        (QueueFilter(), {"a1@x.example", "a2@y.example", "b1@slow.example", "b2@slow.example",
                         "b3@other.example", "c2@z.example"}),
        (QueueFilter(status="failed"), {"a1@x.example", "a2@y.example"}),
        (QueueFilter(status="held"), {"b3@other.example"}),
        (QueueFilter(status="delivered"), set()),
        (QueueFilter(destination="relay:mx:slow.example"), {"b1@slow.example", "b2@slow.example"}),
        (QueueFilter(destination="relay:backup"), {"c2@z.example"}),
        (QueueFilter(error=ErrorKey(451, "4.7.1", "greylisted for # seconds")),
         {"b1@slow.example", "b2@slow.example"}),
        (QueueFilter(error=ErrorKey(None, "4.4.1", "connection refused: [errno #")),
         {"b3@other.example", "c2@z.example"}),
        (QueueFilter(error=ErrorKey(None, "4.4.1", "connection refused: [errno #"), status="held"),
         {"b3@other.example"}),
        (QueueFilter(search="SLOW"), {"b1@slow.example", "b2@slow.example"}),
        (QueueFilter(search="invoice"), {"c2@z.example"}),
        (QueueFilter(search="rejected a1"), {"a1@x.example"}),
        (QueueFilter(search="100%_"), set()),
    ],
)  # fmt: skip
async def test_page_filters(db_url: str, filter_: QueueFilter, addresses: set[str]) -> None:
    """Status, destination, error group and search each narrow the list (and its total)."""
    async with open_store(db_url) as store:
        await seeded(store)
        page = await store.queue_view.page(filter_)
    assert {r.address for r in page.rows} == addresses
    assert page.total == len(addresses)


async def test_page_rows_carry_message_and_destination(db_url: str) -> None:
    """Rows come newest first, with sender, subject and destination."""
    async with open_store(db_url) as store:
        ids = await seeded(store)
        page = await store.queue_view.page(limit=2)
        (grey,) = (await store.queue_view.page(QueueFilter(search="b1@"))).rows
    assert page.total == 6 and len(page.rows) == 2
    assert [r.address for r in page.rows] == ["c2@z.example", "b3@other.example"]
    assert (grey.message_id, grey.destination, grey.mail_from) == (
        ids["mx"],
        "relay:mx:slow.example",
        "sender@example.com",
    )
    assert grey.error == ErrorKey(451, "4.7.1", "greylisted for # seconds")


async def test_groups_leave_out_their_own_facet(db_url: str) -> None:
    """With a destination chosen, destination groups still list the others; error groups
    count only that destination."""
    async with open_store(db_url) as store:
        await seeded(store)
        chosen = QueueFilter(destination="relay:mx:other.example")
        destinations = await store.queue_view.groups("destination", chosen)
        errors = await store.queue_view.groups("error", chosen)
    assert len(destinations) == 4
    assert [(g.key, g.count) for g in errors] == [("|4.4.1|connection refused: [errno #", 1)]


async def test_retry_everything_a_filter_matches(db_url: str) -> None:
    """Bulk retry queues the deferred and failed recipients matched, due now, and nothing else;
    each changed message is announced."""
    async with open_store(db_url) as store:
        ids = await seeded(store)
        refused = QueueFilter(error=ErrorKey(None, "4.4.1", "connection refused: [errno #"))
        async with store.events.subscribe() as events:
            assert await store.actions.act_matching("retry", refused, NOW + 5) == 1
            heard = [events.get_nowait() for _ in range(events.qsize())]
        assert [(e.kind, e.message_id) for e in heard] == [
            ("status", ids["kept"]),
            ("due", ids["kept"]),
        ]
        kept = await recipients(store, ids["kept"])
        mx = await recipients(store, ids["mx"])
        assert (kept["c2@z.example"].status, kept["c2@z.example"].next_attempt_at) == (
            Status.QUEUED,
            NOW + 5,
        )
        assert mx["b3@other.example"].status == Status.HELD  # held: released, not retried
        assert mx["b1@slow.example"].status == Status.DEFERRED
        everything = await store.actions.act_matching("retry", QueueFilter(), NOW + 6)
        assert everything == 4
        claims = await store.queue.claim("w2", NOW + 6, LEASE, 100)
        assert {c.address for c in claims} == {
            "a1@x.example",
            "a2@y.example",
            "b1@slow.example",
            "b2@slow.example",
            "c2@z.example",
        }


@pytest.mark.parametrize(
    ("action", "address", "after", "changed"),
    [
        ("retry", "a1@x.example", Status.QUEUED, 1),
        ("hold", "b1@slow.example", Status.HELD, 1),
        ("hold", "a1@x.example", Status.FAILED, 0),
        ("cancel", "b1@slow.example", Status.CANCELLED, 1),
        ("release", "b3@other.example", Status.QUEUED, 1),
        ("retry", "ok@x.example", Status.DELIVERED, 0),
    ],
)
async def test_act_on_selected_recipients(
    db_url: str, action: str, address: str, after: Status, changed: int
) -> None:
    """An action on a selection changes only the recipients in states it applies to."""
    async with open_store(db_url) as store:
        ids = await seeded(store)
        rows = {**await recipients(store, ids["smarthost"]), **await recipients(store, ids["mx"])}
        count = await store.actions.act_on(action, [rows[address].id], NOW + 1)
        now = {**await recipients(store, ids["smarthost"]), **await recipients(store, ids["mx"])}
    assert (count, now[address].status) == (changed, after)


@pytest.mark.parametrize(
    ("action", "address", "kinds"),
    [
        ("retry", "a1@x.example", ["status", "due"]),
        ("hold", "b1@slow.example", ["status"]),
    ],
)
async def test_bulk_actions_announce_work_that_became_due(
    db_url: str, action: str, address: str, kinds: list[str]
) -> None:
    """A bulk retry says "due" (which wakes delivery workers), a hold only "status"."""
    async with open_store(db_url) as store:
        ids = await seeded(store)
        rows = {**await recipients(store, ids["smarthost"]), **await recipients(store, ids["mx"])}
        async with store.events.subscribe() as events:
            assert await store.actions.act_on(action, [rows[address].id], NOW + 1) == 1
            heard = [events.get_nowait() for _ in kinds]
            assert events.empty()
    assert [e.kind for e in heard] == kinds
    assert len({e.message_id for e in heard}) == 1 and heard[0].message_id in ids.values()


async def test_summary_counts_recipients_per_state(db_url: str) -> None:
    """The summary counts queue states; attention is deferred plus failed."""
    async with open_store(db_url) as store:
        await seeded(store)
        await store.add_message(new_message(["q@x.example"]))
        summary = await store.queue_view.summary()
    assert (summary.queued, summary.deferred, summary.failed, summary.held) == (1, 3, 2, 1)
    assert summary.attention == 5
