"""The queue's SQL on both backends: leases, results, lease upkeep and operator actions."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import select

from relay import routing
from relay.config import RouteConfig
from relay.delivery.recorder import Recorder
from relay.routing import Destination
from relay.status import Status
from relay.store import Claim, NewMessage, NewRecipient, Result, Store
from relay.store.schema import recipient
from tests.queueing import new_message, open_store, recipients

LEASE = 300.0


def result(
    claim_id: int, message_id: str, status: Status, code: int, text: str, now: float
) -> Result:
    """A Result for one claimed recipient."""
    return Result(
        recipient_id=claim_id,
        message_id=message_id,
        status=status,
        next_attempt_at=now + 60 if status is Status.DEFERRED else None,
        code=code,
        enhanced=f"{code // 100}.0.0",
        text=text,
        host="smtp.example:25",
        started_at=now,
        duration=0.5,
    )


async def test_claim_commits_the_lease_before_returning(db_url: str) -> None:
    """A claim is visible to another connection (another process) as soon as it returns."""
    async with open_store(db_url) as store, open_store(db_url) as other:
        new = new_message(["a@example.com"], received_at=1000.0)
        await store.add_message(new)
        claims = await store.queue.claim("worker-1", 1000.0, LEASE, 10)
        assert [c.address for c in claims] == ["a@example.com"]
        assert claims[0].mail_from == "sender@example.com"
        seen = (await recipients(other, new.id))["a@example.com"]
        assert seen.status == Status.SENDING
        assert await other.queue.claim("worker-2", 1000.0, LEASE, 10) == []


async def test_concurrent_claimers_never_share_a_recipient(db_url: str) -> None:
    """Two stores claiming at once split the due recipients: each goes to exactly one."""
    async with open_store(db_url) as one, open_store(db_url) as two:
        for i in range(8):
            await one.add_message(
                new_message([f"r{i}-{j}@example.com" for j in range(5)], received_at=1000.0)
            )

        async def drain(store: Store, owner: str) -> list[int]:
            got: list[int] = []
            while claims := await store.queue.claim(owner, 1000.0, LEASE, 3):
                got += [c.id for c in claims]
            return got

        first, second = await asyncio.gather(drain(one, "w1"), drain(two, "w2"))
        assert not set(first) & set(second)
        assert len(first) + len(second) == 40


async def test_only_due_recipients_and_lapsed_leases_are_claimed(db_url: str) -> None:
    """Future retries, captured and held recipients wait; a lapsed lease is taken over."""
    async with open_store(db_url) as store:
        now = 1000.0
        new = new_message(
            [
                NewRecipient("due@example.com", "relay:smarthost", Status.QUEUED),
                NewRecipient("kept@example.com", "capture", Status.CAPTURED),
                NewRecipient("held@example.com", "relay:smarthost", Status.QUEUED),
            ],
            received_at=now,
        )
        await store.add_message(new)
        assert (
            await store.actions.act(
                "hold",
                new.id,
                now,
                [
                    r.id
                    for r in (await recipients(store, new.id)).values()
                    if r.address == "held@example.com"
                ],
            )
            == 1
        )
        claims = await store.queue.claim("crashed", now, LEASE, 10)
        assert [c.address for c in claims] == ["due@example.com"]
        assert await store.queue.claim("w2", now + LEASE - 1, LEASE, 10) == []
        taken = await store.queue.claim("w2", now + LEASE + 1, LEASE, 10)
        assert [c.address for c in taken] == ["due@example.com"]


async def test_busy_destinations_are_left_for_later(db_url: str) -> None:
    """A claim skips routes and MX domains the worker says are busy."""
    async with open_store(db_url) as store:
        await store.add_message(new_message(["a@busy.example"], route="relay:busy"))
        await store.add_message(new_message(["b@slow.example", "c@fine.example"], route="relay:mx"))
        await store.add_message(new_message(["d@example.com"], route="relay:smarthost"))
        claims = await store.queue.claim(
            "w",
            2e9,
            LEASE,
            10,
            busy={Destination.parse("relay:busy"), Destination.mx("slow.example")},
        )
        assert sorted(c.address for c in claims) == ["c@fine.example", "d@example.com"]


async def test_finish_records_attempts_and_new_statuses(db_url: str) -> None:
    """Each result becomes an attempt row and sets status, counters, last reply, no lease."""
    async with open_store(db_url) as store:
        now = 1000.0
        new = new_message(["ok@x.example", "later@x.example", "no@x.example"], received_at=now)
        await store.add_message(new)
        claims = {c.address: c for c in await store.queue.claim("w", now, LEASE, 10)}
        outcomes = [
            result(claims["ok@x.example"].id, new.id, Status.DELIVERED, 250, "queued", now),
            result(claims["later@x.example"].id, new.id, Status.DEFERRED, 451, "busy", now),
            result(claims["no@x.example"].id, new.id, Status.FAILED, 550, "no such user", now),
        ]
        assert await store.queue.finish("w", outcomes, now + 1) == 3
        rows = await recipients(store, new.id)
        assert {a: r.status for a, r in rows.items()} == {
            "ok@x.example": Status.DELIVERED,
            "later@x.example": Status.DEFERRED,
            "no@x.example": Status.FAILED,
        }
        assert rows["later@x.example"].next_attempt_at == now + 60
        assert (rows["no@x.example"].last_code, rows["no@x.example"].last_text) == (
            550,
            "no such user",
        )
        assert all(r.attempts == 1 for r in rows.values())
        attempts = await store.timeline.attempts(new.id)
        assert [(a.address, a.code, a.enhanced, a.host) for a in attempts] == [
            ("ok@x.example", 250, "2.0.0", "smtp.example:25"),
            ("later@x.example", 451, "4.0.0", "smtp.example:25"),
            ("no@x.example", 550, "5.0.0", "smtp.example:25"),
        ]
        assert await store.queue.claim("w", now + 59, LEASE, 10) == []
        assert [c.address for c in await store.queue.claim("w", now + 61, LEASE, 10)] == [
            "later@x.example"
        ]


async def test_a_result_after_the_lease_was_lost_leaves_the_new_owner_alone(db_url: str) -> None:
    """A worker whose lease lapsed and was taken over records its attempt, not its status."""
    async with open_store(db_url) as store:
        new = new_message(["a@x.example"], received_at=1000.0)
        await store.add_message(new)
        (stale,) = await store.queue.claim("slow", 1000.0, LEASE, 10)
        (fresh,) = await store.queue.claim("fast", 1000.0 + LEASE + 1, LEASE, 10)
        late = result(stale.id, new.id, Status.DELIVERED, 250, "ok", 1400.0)
        assert await store.queue.finish("slow", [late], 1400.0) == 0
        row = (await recipients(store, new.id))["a@x.example"]
        assert (row.status, row.attempts) == (Status.SENDING, 0)
        assert len(await store.timeline.attempts(new.id)) == 1
        assert fresh.id == stale.id


async def test_an_expired_lease_is_taken_up_by_another_process(db_url: str) -> None:
    """A lease left by one process (store) is taken by another once it lapses, not before;
    the first can then neither renew it nor record a result over the new owner's."""
    async with open_store(db_url) as crashed, open_store(db_url) as survivor:
        new = new_message(["a@x.example"], received_at=1000.0)
        await crashed.add_message(new)
        (held,) = await crashed.queue.claim("crashed", 1000.0, LEASE, 10)
        assert await survivor.queue.claim("survivor", 1000.0 + LEASE - 1, LEASE, 10) == []
        assert await survivor.queue.next_due(1000.0, "survivor") == 1000.0 + LEASE
        (taken,) = await survivor.queue.claim("survivor", 1000.0 + LEASE + 1, LEASE, 10)
        assert taken.id == held.id
        assert await crashed.queue.renew("crashed", [held.id], 2000.0) == 0
        late = result(held.id, new.id, Status.DELIVERED, 250, "ok", 1400.0)
        assert await crashed.queue.finish("crashed", [late], 1400.0) == 0
        done = result(taken.id, new.id, Status.DELIVERED, 250, "ok", 1401.0)
        assert await survivor.queue.finish("survivor", [done], 1401.0) == 1
        row = (await recipients(crashed, new.id))["a@x.example"]
        assert (row.status, row.attempts) == (Status.DELIVERED, 1)


async def test_claims_skip_rows_another_transaction_has_locked(pg_url: str) -> None:
    """PostgreSQL: a claim never waits for rows another process is claiming (SKIP LOCKED);
    it takes the others at once."""
    async with open_store(pg_url) as one, open_store(pg_url) as two:
        new = new_message([f"r{i}@x.example" for i in range(6)], received_at=1000.0)
        await one.add_message(new)
        async with one.db.writer.connect() as conn:
            transaction = await conn.begin()
            locked = (
                (
                    await conn.execute(
                        select(recipient.c.id).order_by(recipient.c.id).limit(3).with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            claims = await asyncio.wait_for(two.queue.claim("w2", 1000.0, LEASE, 10), 10)
            await transaction.rollback()
    assert len(locked) == 3
    assert sorted(c.id for c in claims) == sorted(set(range(1, 7)) - set(locked))


async def test_give_back_returns_recipients_as_they_were(db_url: str) -> None:
    """Given-back recipients wait again, due at once, with no attempt counted."""
    async with open_store(db_url) as store:
        now = 1000.0
        new = new_message(["first@x.example", "retry@x.example"], received_at=now)
        await store.add_message(new)
        claims = {c.address: c for c in await store.queue.claim("w", now, LEASE, 10)}
        retry = claims["retry@x.example"]
        await store.queue.finish(
            "w", [result(retry.id, new.id, Status.DEFERRED, 451, "busy", now)], now
        )
        again = await store.queue.claim("w", now + 61, LEASE, 10)
        assert {c.address for c in again} == {"retry@x.example"}
        given = await store.queue.give_back("w", [claims["first@x.example"].id, retry.id], now + 62)
        assert given == 2
        rows = await recipients(store, new.id)
        assert (rows["first@x.example"].status, rows["first@x.example"].attempts) == (
            Status.QUEUED,
            0,
        )
        assert (rows["retry@x.example"].status, rows["retry@x.example"].attempts) == (
            Status.DEFERRED,
            1,
        )
        assert len(await store.queue.claim("w2", now + 62, LEASE, 10)) == 2


async def test_release_all_leases_frees_what_a_killed_process_held(db_url: str) -> None:
    """At start-up (one process owning the queue) every leftover lease is freed at once."""
    async with open_store(db_url) as store:
        new = new_message(["a@x.example"], received_at=1000.0)
        await store.add_message(new)
        await store.queue.claim("killed", 1000.0, LEASE, 10)
        assert await store.queue.release_all_leases(1001.0) == 1
        (claim,) = await store.queue.claim("restarted", 1001.0, LEASE, 10)
        assert claim.address == "a@x.example"


async def test_a_claim_takes_whole_messages(db_url: str) -> None:
    """A batch that would cut a message's recipients apart takes the rest of them too, so
    they travel in one transaction; the next message waits for the next claim."""
    async with open_store(db_url) as store:
        first = new_message(["a@x.example", "b@x.example", "c@x.example"], received_at=1000.0)
        second = new_message(["d@x.example"], received_at=1000.0)
        await store.add_message(first)
        await store.add_message(second)
        claims = await store.queue.claim("w", 1000.0, LEASE, 2)
        assert [c.address for c in claims] == ["a@x.example", "b@x.example", "c@x.example"]
        (rest,) = await store.queue.claim("w", 1000.0, LEASE, 2)
        assert rest.message_id == second.id


async def test_renew_extends_only_the_owners_leases(db_url: str) -> None:
    """Renewal keeps a long delivery's lease from lapsing; it never touches others'."""
    async with open_store(db_url) as store:
        await store.add_message(new_message(["a@x.example"], received_at=1000.0))
        (claim,) = await store.queue.claim("w", 1000.0, LEASE, 10)
        assert await store.queue.renew("intruder", [claim.id], 5000.0) == 0
        assert await store.queue.renew("w", [claim.id], 1000.0 + 2 * LEASE) == 1
        assert await store.queue.claim("other", 1000.0 + LEASE + 1, LEASE, 10) == []


async def test_next_due_is_the_earliest_future_retry_or_foreign_lease(db_url: str) -> None:
    """The worker sleeps until the next retry falls due or another owner's lease lapses."""
    async with open_store(db_url) as store:
        now = 1000.0
        new = new_message(["a@x.example"], received_at=now)
        await store.add_message(new)
        await store.add_message(new_message(["b@x.example"], received_at=now))
        assert await store.queue.next_due(now - 10, "w") == now
        claims = await store.queue.claim("w", now, LEASE, 1)
        await store.queue.finish(
            "w", [result(claims[0].id, new.id, Status.DEFERRED, 451, "busy", now)], now
        )
        assert await store.queue.next_due(now, "w") == now + 60
        await store.queue.claim("other", now, LEASE, 1)
        assert await store.queue.next_due(now, "w") == now + 60
        assert await store.queue.next_due(now, "me") == now + 60
        assert await store.queue.next_due(now + 61, "w") == now + LEASE


async def test_a_claim_reads_its_suppressed_and_when_to_look_again_itself(db_url: str) -> None:
    """The claim's own transaction finds the suppression entries of what it leased and,
    when it took all that was due, when the queue next needs a look: the worker reads
    nothing of its own between the claim and the sends."""
    async with open_store(db_url) as store:
        now = 1000.0
        await store.suppressions.add("gone@X.example", "550 5.1.1 no such user", now)
        later = new_message(["b@x.example"], received_at=now)
        await store.add_message(later)
        (waiting,) = await store.queue.claim("other", now, LEASE, 1)
        await store.queue.finish(
            "other", [result(waiting.id, later.id, Status.DEFERRED, 451, "busy", now)], now
        )
        await store.add_message(new_message(["gone@x.example", "ok@x.example"], received_at=now))
        batch = await store.queue.claim_batch("w", now, LEASE, 10)
        assert sorted(c.address for c in batch.claims) == ["gone@x.example", "ok@x.example"]
        assert list(batch.suppressed) == ["gone@x.example"]
        assert batch.suppressed["gone@x.example"].reason == "550 5.1.1 no such user"
        assert batch.last and batch.next_due == now + 60
        full = await store.queue.claim_batch("w", now + 61, LEASE, 1)  # the limit is reached
        assert [c.address for c in full.claims] == ["b@x.example"]
        assert not full.last and full.suppressed == {}
        empty = await store.queue.claim_batch("x", now + 61, LEASE, 1)  # w's leases lapse
        assert empty.claims == [] and empty.last and empty.next_due == now + LEASE


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("retry", Status.DEFERRED, Status.QUEUED),
        ("retry", Status.FAILED, Status.QUEUED),
        ("retry", Status.DELIVERED, Status.DELIVERED),
        ("retry", Status.CAPTURED, Status.CAPTURED),
        ("hold", Status.QUEUED, Status.HELD),
        ("hold", Status.DEFERRED, Status.HELD),
        ("hold", Status.FAILED, Status.FAILED),
        ("release", Status.HELD, Status.QUEUED),
        ("release", Status.DEFERRED, Status.DEFERRED),
        ("cancel", Status.QUEUED, Status.CANCELLED),
        ("cancel", Status.DEFERRED, Status.CANCELLED),
        ("cancel", Status.HELD, Status.CANCELLED),
        ("cancel", Status.DELIVERED, Status.DELIVERED),
        ("cancel", Status.SENDING, Status.SENDING),
    ],
)
async def test_operator_actions(db_url: str, action: str, before: Status, after: Status) -> None:
    """Each action changes only the states it applies to; retry and release make it due now."""
    async with open_store(db_url) as store:
        now = 1000.0
        captured = before is Status.CAPTURED
        new = new_message(
            ["a@x.example"],
            received_at=now,
            route="capture" if captured else "relay:smarthost",
            status=Status.CAPTURED if captured else Status.QUEUED,
        )
        await store.add_message(new)
        await _put_in(store, new.id, before, now)
        later = now + 3600
        changed = await store.actions.act(action, new.id, later)
        row = (await recipients(store, new.id))["a@x.example"]
        assert row.status == after
        assert changed == (before != after)
        if after is Status.QUEUED:
            assert row.next_attempt_at == later
            assert [c.address for c in await store.queue.claim("w", later, LEASE, 10)] == [
                "a@x.example"
            ]


async def _put_in(store: Store, message_id: str, status: Status, now: float) -> None:
    """Bring the message's single recipient into `status` the way the system would."""
    if status in (Status.QUEUED, Status.CAPTURED):
        return
    if status is Status.HELD:
        await store.actions.act("hold", message_id, now)
        return
    (claim,) = await store.queue.claim("w", now, LEASE, 10)
    if status is Status.SENDING:
        return
    code = {Status.DELIVERED: 250, Status.DEFERRED: 451, Status.FAILED: 550}[status]
    await store.queue.finish("w", [result(claim.id, message_id, status, code, "x", now)], now)


async def test_release_captured_routes_each_address(db_url: str) -> None:
    """Releasing a captured message queues relay-routed addresses; others are reported."""
    rules = (
        RouteConfig(match="*@ourcompany.example", action="relay", upstream="smarthost"),
        RouteConfig(match="blocked.example", action="reject"),
        RouteConfig(match="*", action="capture"),
    )
    async with open_store(db_url) as store:
        now = 1000.0
        new = new_message(["dev@ourcompany.example"], route="capture", status=Status.CAPTURED)
        await store.add_message(new)
        released = await store.actions.release_captured(
            new.id,
            routing.route_all(
                [
                    "dev@OURCOMPANY.example",
                    "boss@ourcompany.example",
                    "x@blocked.example",
                    "y@else.example",
                ],
                rules,
            ),
            now,
        )
        assert released is not None
        assert released.queued == {
            "dev@OURCOMPANY.example": "relay:smarthost",
            "boss@ourcompany.example": "relay:smarthost",
        }
        assert released.skipped == {"x@blocked.example": "reject", "y@else.example": "capture"}
        rows = await recipients(store, new.id)
        assert set(rows) == {"dev@ourcompany.example", "boss@ourcompany.example"}
        assert {r.status for r in rows.values()} == {Status.QUEUED}
        assert {r.route for r in rows.values()} == {"relay:smarthost"}
        claims = await store.queue.claim("w", now, LEASE, 10)
        assert len(claims) == 2
        again = await store.actions.release_captured(
            new.id, routing.route_all(["dev@ourcompany.example"], rules), now
        )
        assert again is not None
        assert again.skipped == {"dev@ourcompany.example": Status.SENDING.value}
        nowhere = routing.route_all(["a@b.example"], rules)
        assert await store.actions.release_captured("nope", nowhere, now) is None


async def test_queue_changes_are_announced_after_commit(db_url: str) -> None:
    """Results and operator actions publish a status event once committed."""
    async with open_store(db_url) as store:
        new = new_message(["a@x.example"], received_at=1000.0)
        await store.add_message(new)
        async with store.events.subscribe() as events:
            await store.actions.act("hold", new.id, 1000.0)
            event = events.get_nowait()
            assert (event.kind, event.message_id) == ("status", new.id)
            row = (await recipients(store, new.id))["a@x.example"]
            assert row.status == Status.HELD


async def test_only_changes_that_make_work_due_announce_it(db_url: str) -> None:
    """Hold announces a status change; release also says "due", which wakes workers."""
    async with open_store(db_url) as store:
        new = new_message(["a@x.example"], received_at=1000.0)
        await store.add_message(new)
        async with store.events.subscribe() as events:
            await store.actions.act("hold", new.id, 1000.0)
            held = [events.get_nowait()]
            assert events.empty()
            await store.actions.act("release", new.id, 1001.0)
            released = [events.get_nowait(), events.get_nowait()]
            assert events.empty()
    assert [(e.kind, e.message_id) for e in held] == [("status", new.id)]
    assert [(e.kind, e.message_id) for e in released] == [("status", new.id), ("due", new.id)]


async def test_results_finishing_together_are_written_in_one_transaction(db_url: str) -> None:
    """Ten deliveries handing over their results at once cost one write, and each caller
    returns with its own results committed; a later one gets a write of its own."""
    async with open_store(db_url) as store:
        now = 1000.0
        news = [new_message([f"r{i}@x.example"], received_at=now) for i in range(11)]
        for new in news:
            await store.add_message(new)
        claims = {c.message_id: c for c in await store.queue.claim("w", now, LEASE, 20)}
        recorder = Recorder(store.queue, "w")
        outcomes = [
            result(claims[n.id].id, n.id, Status.DELIVERED, 250, "queued", now) for n in news
        ]
        await asyncio.gather(*(recorder.record([o], now + 1) for o in outcomes[:10]))
        assert recorder.batches == 1
        await recorder.record([outcomes[10]], now + 2)
        assert recorder.batches == 2
        for new in news:
            rows = await recipients(store, new.id)
            assert [r.status for r in rows.values()] == [Status.DELIVERED]


async def _one_claimed(store: Store, address: str, now: float) -> tuple[NewMessage, Claim]:
    """A stored message to `address`, its one recipient claimed by "w"."""
    new = new_message([address], received_at=now)
    await store.add_message(new)
    (claim,) = await store.queue.claim("w", now, LEASE, 10)
    return new, claim


async def test_a_cancelled_caller_still_gets_its_results_written(db_url: str) -> None:
    """Cancelling a delivery that handed its results over (a worker stopping) does not
    lose them: `drain` waits for the write, and the recipient is settled."""
    async with open_store(db_url) as store:
        now = 1000.0
        new, claim = await _one_claimed(store, "late@x.example", now)
        recorder = Recorder(store.queue, "w")
        outcome = result(claim.id, new.id, Status.DEFERRED, 451, "busy", now)
        caller = asyncio.create_task(recorder.record([outcome], now + 1))
        await asyncio.sleep(0)  # handed over, the write under way
        caller.cancel()
        await recorder.drain()
        rows = await recipients(store, new.id)
        assert caller.cancelled()
        assert (rows["late@x.example"].status, rows["late@x.example"].last_code) == (
            Status.DEFERRED,
            451,
        )


async def test_a_failed_write_raises_in_every_caller_of_its_batch(db_url: str) -> None:
    """When the write fails, each caller whose results were in it gets the error; none
    returns as if recorded, and the recipient stays leased."""
    async with open_store(db_url) as store:
        now = 1000.0
        new, claim = await _one_claimed(store, "a@x.example", now)
        recorder = Recorder(store.queue, "w")
        good = result(claim.id, new.id, Status.DELIVERED, 250, "queued", now)
        broken = dataclasses.replace(good, host=None)  # NOT NULL: the INSERT fails
        outcomes = await asyncio.gather(
            recorder.record([good], now + 1),
            recorder.record([broken], now + 1),
            return_exceptions=True,
        )
        assert recorder.batches == 1
        assert all(isinstance(o, Exception) for o in outcomes)
        rows = await recipients(store, new.id)
        assert rows["a@x.example"].status == Status.SENDING
