"""A second process acting on a relay's SQLite queue the way `relay queue …` tools do: it
opens the same file with its own Store and runs operator actions in a loop until a stop
file appears, printing each action it completed as a JSON line.

    python -m tests.operator_process DATABASE_URL STOP_FILE

It prints "ready" once its store is open, and after the stop file appears it goes on (for
at most GRACE seconds) until each action has changed something at least once, so that a
slow start on a busy machine still exercises every action. It acts only on messages whose
id ends in one of MINE, so that a test can let other writers act on the rest and still check
every answered write.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from relay.config import StorageConfig
from relay.store import Filter, Store

MINE = "GHJKMNPQRSTVWXYZ"
ACTIONS = ("retry", "hold", "cancel", "delete", "read")
GRACE = 60.0


def report(action: str, message_id: str, changed: int) -> None:
    """One completed action, as a JSON line on stdout."""
    print(json.dumps({"action": action, "id": message_id, "changed": changed}), flush=True)


async def act(store: Store, action: str, message_id: str) -> int:
    """Run one operator action on one message; return how many rows it changed."""
    now = time.time()
    if action == "retry":
        return await store.actions.act("retry", message_id, now)
    if action == "hold":
        return await store.actions.act("hold", message_id, now)
    if action == "cancel":
        return await store.actions.act("cancel", message_id, now)
    if action == "delete":
        return len(await store.delete_messages([message_id]))
    return len(await store.set_read([message_id], True))


async def run(url: str, stop: Path) -> None:
    """Act on one not-yet-touched message of ours per action, round after round."""
    store = Store(StorageConfig(url=url))
    await store.open()
    touched: set[str] = set()
    acted: set[str] = set()
    turn = 0
    print("ready", flush=True)
    stopped_at: float | None = None
    try:
        while True:
            if stopped_at is None and await asyncio.to_thread(stop.exists):
                stopped_at = time.monotonic()
            if stopped_at is not None and (
                acted >= set(ACTIONS) or time.monotonic() - stopped_at > GRACE
            ):
                break
            page = await store.messages.page(0, 200, Filter(status="deferred"))
            ours = [m.id for m in page.messages if m.id[-1] in MINE and m.id not in touched]
            for message_id in ours[:10]:
                action = ACTIONS[turn % len(ACTIONS)]
                turn += 1
                touched.add(message_id)
                changed = await act(store, action, message_id)
                if changed:
                    acted.add(action)
                report(action, message_id, changed)
            await asyncio.sleep(0.05)  # a person at a terminal is not a tight loop
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], Path(sys.argv[2])))
