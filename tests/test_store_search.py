"""Search and filters in the store, on SQLite and PostgreSQL: the right messages, newest first."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from relay.config import StorageConfig
from relay.query import parse
from relay.status import Status, message_status
from relay.store import Filter, Indexer, Store, messages, schema, search
from relay.store import counts as counts_module
from relay.store.migrations.versions.m0004_search_index import PG_INDEX as PG_TRIGRAM_INDEX
from tests.webkit import add, message

S = Status


async def seed(store: Store) -> dict[str, str]:
    """Six messages covering the fields, statuses and flags the searches look at."""
    ids = {}
    ids["invoice"] = await add(
        store,
        message("Invoice 1042", "Please pay 100% by Friday.", "Billing <billing@shop.example>"),
        {"acct@client.example": S.DELIVERED},
        listener="submission",
        user="shop",
    )
    ids["failed"] = await add(
        store,
        message("Password reset", "Click the link to reset.", "noreply@app.example", "x@y.example"),
        {"gone@nowhere.example": S.FAILED, "ok@client.example": S.DELIVERED},
        user="app",
    )
    ids["deferred"] = await add(
        store,
        message("Weekly digest", "Ünïcödé body with a needle_in_it.", to="team@corp.example"),
        {"team@corp.example": S.DEFERRED, "boss@corp.example": S.FAILED},
    )
    ids["attach"] = await add(
        store,
        message("Report", "see attached", extra="X-Ignore: 1\r\n").replace(
            b"Content-Type: text/plain; charset=utf-8",
            b'Content-Type: application/pdf; name="r.pdf"\r\nContent-Disposition: attachment',
        ),
        {"ops@corp.example": S.CAPTURED},
    )
    ids["held"] = await add(
        store,
        message("Out of office", "I am away"),
        {"a@corp.example": S.HELD, "b@corp.example": S.CANCELLED},
    )
    ids["cancelled"] = await add(
        store, message("Nevermind", "cancelled mail"), {"c@corp.example": S.CANCELLED}
    )
    await store.set_read([ids["invoice"], ids["held"]], True)
    return ids


CASES = [
    ("", None, ["cancelled", "held", "attach", "deferred", "failed", "invoice"]),
    ("invoice", None, ["invoice"]),
    ("INVOICE", None, ["invoice"]),
    ("100%", None, ["invoice"]),
    ("needle_in", None, ["deferred"]),
    ("ünïcödé", None, ["deferred"]),
    ('"pay 100% by"', None, ["invoice"]),
    ("from:billing", None, ["invoice"]),
    (
        "from:sender@example.com",
        None,
        ["cancelled", "held", "attach", "deferred", "failed", "invoice"],
    ),
    ("to:gone@nowhere", None, ["failed"]),
    ("to:x@y.example", None, ["failed"]),
    ("subject:digest", None, ["deferred"]),
    ("is:unread", None, ["cancelled", "attach", "deferred", "failed"]),
    ("is:read", None, ["held", "invoice"]),
    ("is:failed", None, ["failed"]),
    ("is:deferred", None, ["deferred"]),
    ("is:delivered", None, ["invoice"]),
    ("is:captured", None, ["attach"]),
    ("is:held", None, ["held"]),
    ("is:cancelled", None, ["cancelled"]),
    ("is:queued", None, []),
    ("has:attachment", None, ["attach"]),
    ("-has:attachment -is:read", None, ["cancelled", "deferred", "failed"]),
    ("-from:noreply is:unread", None, ["cancelled", "attach", "deferred"]),
    ('-"out of office" corp', None, ["cancelled", "attach", "deferred"]),
    ("listener:submission", None, ["invoice"]),
    ("user:app", None, ["failed"]),
    ("", Filter(status="failed"), ["failed"]),
    ("", Filter(status="delivered"), ["invoice"]),
    ("", Filter(listener="smtp"), ["cancelled", "held", "attach", "deferred", "failed"]),
    ("", Filter(user="shop"), ["invoice"]),
    ("", Filter(unread=True, status="deferred"), ["deferred"]),
    ("reset", Filter(status="failed", user="app"), ["failed"]),
    ("reset", Filter(status="delivered"), []),
    ("is:sleepy", None, []),
    ("invoice has:pony", None, []),
    ("after:yesterday", Filter(status="failed"), []),
]


@pytest.mark.parametrize(("q", "base", "expected"), CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
async def test_search_finds_exactly_these(
    store: Store, q: str, base: Filter | None, expected: list[str]
) -> None:
    """Each search and filter lists exactly the expected messages, newest first."""
    await check_search(store, q, base, expected)


@pytest.mark.parametrize(("q", "base", "expected"), CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
async def test_search_finds_the_same_when_every_term_counts_as_common(
    store: Store, q: str, base: Filter | None, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same messages when every term found at all counts as common (`FEW` and
    `FEW_PG` 1), so that each message's text is checked as the newest-first scan reaches
    it (on PostgreSQL instead of the ids the trigram index found)."""
    monkeypatch.setattr(search, "FEW", 1)
    monkeypatch.setattr(search, "FEW_PG", 1)
    await check_search(store, q, base, expected)


@pytest.mark.parametrize(
    ("indexed", "few"),
    [(3, search.FEW), (6, search.FEW), (3, 2), (6, 2)],
    ids=["half-indexed", "indexed", "half-indexed-common", "indexed-common"],
)
@pytest.mark.parametrize(("q", "base", "expected"), CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
async def test_search_finds_the_same_with_the_index(
    sqlite_store: Store,
    q: str,
    base: Filter | None,
    expected: list[str],
    indexed: int,
    few: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite: the same messages when the search index holds some or all of them, and
    whether a term is looked up in the index or scanned for (`few` 2: a term whose
    trigrams two or more indexed rows hold counts as common)."""
    monkeypatch.setattr(search, "FEW", few)
    assert sqlite_store.indexer is not None
    await check_search(sqlite_store, q, base, expected, indexer=sqlite_store.indexer, rows=indexed)


async def check_search(
    store: Store,
    q: str,
    base: Filter | None,
    expected: list[str],
    indexer: Indexer | None = None,
    rows: int = 0,
) -> None:
    """Seed, index the oldest `rows` messages with `indexer`, search, and compare."""
    ids = await seed(store)
    if indexer is not None:
        assert (await indexer.step(budget=1, batch=rows)).indexed == rows
    names = {v: k for k, v in ids.items()}
    base = base or Filter()
    filter_ = Filter(base.status, base.listener, base.user, parse(q), base.unread)
    page = await store.messages.page(0, 50, filter_)
    assert [names[m.id] for m in page.messages] == expected
    assert page.total == len(expected)


async def test_counts_per_derived_status(store: Store) -> None:
    """The navigation's counts follow each message's derived status."""
    await seed(store)
    counts = await store.messages.counts()
    assert counts.total == 6
    assert counts.unread == 4
    assert counts.by_status == {
        "queued": 0,
        "deferred": 1,
        "held": 1,
        "failed": 1,
        "delivered": 1,
        "captured": 1,
        "cancelled": 1,
    }


MIXES = [
    (S.DELIVERED,),
    (S.DELIVERED, S.DELIVERED),
    (S.DELIVERED, S.DEFERRED),
    (S.DELIVERED, S.DELIVERED, S.FAILED),
    (S.DELIVERED, S.HELD, S.CAPTURED),
    (S.DELIVERED, S.QUEUED),
    (S.DELIVERED, S.SENDING),
    (S.DELIVERED, S.CANCELLED),
    (S.DELIVERED, S.CAPTURED),
    (S.FAILED, S.DEFERRED),
    (S.HELD, S.HELD),
    (S.CANCELLED, S.CAPTURED),
    (S.CANCELLED,),
    (S.CAPTURED,),
]
"""Messages' recipients: each status alone, twice, and beside every other."""


async def test_counts_of_mixed_recipients_in_all_and_per_mailbox(store: Store) -> None:
    """Each message counts once, as the status its recipients make it show, in all and in
    its mailbox: the delivered count (the messages with a delivered recipient less those
    with a queue one) too, with several delivered recipients or none but them; and the
    unread ones, counted in the same pass as the total."""
    made = {}
    for mix in MIXES:
        rcpts = {f"r{i}@example.org": status for i, status in enumerate(mix)}
        made[await add(store, message("Mixed", "m"), rcpts)] = message_status(mix)
    await store.set_read(list(made)[:5], True)
    counts = await store.messages.counts()
    expected = {s.value: 0 for s in counts_module.SHOWN}
    for shown in made.values():
        expected[shown.value] += 1
    assert counts.total == len(MIXES) and counts.by_status == expected
    assert counts.unread == len(MIXES) - 5
    assert expected["delivered"] == 4 and expected["queued"] == 2
    in_mailbox = await store.messages.counts_in("default")
    assert in_mailbox.by_status == expected and in_mailbox.unread == len(MIXES) - 5
    elsewhere = await store.messages.counts_in("elsewhere")
    assert sum(elsewhere.by_status.values()) == 0 and elsewhere.unread == 0


async def test_paging_and_live_queries(store: Store) -> None:
    """Pages split newest first; `after` and `only` pick the rows live updates need."""
    ids = [await add(store, message(f"m{i}")) for i in range(7)]
    first = await store.messages.page(0, 3)
    last = await store.messages.page(6, 3)
    assert [m.id for m in first.messages] == ids[::-1][:3] and first.total == 7
    assert [m.id for m in last.messages] == [ids[0]] and last.total == 7
    newer = await store.messages.page(0, 50, after=ids[4])
    assert [m.id for m in newer.messages] == [ids[6], ids[5]]
    one = await store.messages.page(0, 50, Filter(query=parse("m3")), only=[ids[3]])
    assert [m.id for m in one.messages] == [ids[3]]
    none = await store.messages.page(0, 50, Filter(query=parse("m2")), only=[ids[3]])
    assert none.messages == []


async def test_delete_matching_and_events(store: Store) -> None:
    """Deleting by filter removes only the matches and announces each as "deleted"."""
    ids = await seed(store)
    async with store.events.subscribe() as queue:
        gone = await store.delete_matching(Filter(query=parse("corp")))
        events = [queue.get_nowait() for _ in range(queue.qsize())]
    assert sorted(gone) == sorted([ids["deferred"], ids["attach"], ids["held"], ids["cancelled"]])
    assert {(e.kind, e.message_id) for e in events} == {("deleted", i) for i in gone}
    left = await store.messages.page(0, 50)
    assert sorted(m.id for m in left.messages) == sorted([ids["invoice"], ids["failed"]])
    assert await store.messages.raw(ids["attach"]) is None


@pytest.mark.parametrize("q", ["is:sleepy", "corp larger:huge", "before:"])
async def test_unreadable_search_changes_nothing(store: Store, q: str) -> None:
    """Marking or deleting by a search with a term that cannot be read touches no message:
    a typo never widens a bulk action to every message."""
    ids = await seed(store)
    unreadable = Filter(query=parse(q))
    assert unreadable.query.problems
    assert await store.set_read_matching(unreadable, True) == []
    assert await store.delete_matching(unreadable) == []
    left = await store.messages.page(0, 50)
    assert sorted(m.id for m in left.messages) == sorted(ids.values())
    assert sum(not m.read for m in left.messages) == 4


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize(("q", "base", "expected"), CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
async def test_exact_counts_whether_the_scan_is_split_or_not(
    sqlite_store: Store,
    q: str,
    base: Filter | None,
    expected: list[str],
    parts: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite: the API's exact counts (matching, unread) are the same whether a scan of
    message text runs in one piece or in `parts` ranges side by side."""
    monkeypatch.setattr(messages, "SCAN_PARTS", parts)
    await seed(sqlite_store)
    base = base or Filter()
    filter_ = Filter(base.status, base.listener, base.user, parse(q), base.unread)
    page = await sqlite_store.messages.page(0, 50, filter_)
    matching, unread = await sqlite_store.messages.count_matching(filter_)
    assert (matching, unread) == (len(expected), sum(not m.read for m in page.messages))


def _trigram_scans(plan: dict[str, Any]) -> list[int]:
    """How many times each node of an EXPLAIN ANALYZE plan that reads the trigram index ran."""
    runs = [plan["Actual Loops"]] if plan.get("Index Name") == PG_TRIGRAM_INDEX else []
    for child in plan.get("Plans", []):
        runs += _trigram_scans(child)
    return runs


@pytest.mark.parametrize(("word", "index_read"), [("invoice", False), ("zebra", True)])
async def test_postgresql_tells_a_word_common_in_the_newest_mail_without_its_index(
    pg_url: str, word: str, index_read: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a word that `FEW_PG` of the newest `SAMPLE_PG` texts hold is searched
    for newest first without reading the trigram index at all (whose bitmap holds every
    match: 230 ms at a million); a rarer word is still looked up in the index; and both
    list exactly the messages that hold them, newest first."""
    monkeypatch.setattr(search, "FEW_PG", 5)
    monkeypatch.setattr(search, "SAMPLE_PG", 10)
    store = Store(StorageConfig(url=pg_url))
    await store.open()
    try:
        added = [
            await add(store, message(f"Note {i}", "invoice " + ("zebra" if i < 2 else "horse")))
            for i in range(30)
        ]
        expected = [m for m in reversed(added) if word == "invoice" or added.index(m) < 2]
        clauses = search.where(Filter(query=parse(word)))
        query = select(schema.message.c.id).where(*clauses).order_by(schema.message.c.id.desc())
        sql = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        async with store.db.reader.connect() as conn:
            # As on a large table, where the planner reads the index, not every row.
            await conn.exec_driver_sql("SET enable_seqscan = off")
            found = [row.id for row in await conn.execute(query)]
            explained = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            plan = explained.scalar_one()
    finally:
        await store.close()
    assert found == expected
    runs = _trigram_scans(plan[0]["Plan"])
    assert runs, "the query can read the trigram index"
    assert any(runs) is index_read
