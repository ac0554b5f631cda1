"""No "database is locked": with SQLite, web actions and a second process's operator
actions (retries, holds, cancels, deletes, bulk deletes) run while 16 clients send mail
as fast as they can. No client ever sees a 451, and every write that was answered holds.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.operator_process import MINE
from tests.serving import Ports, Serving, kill_if_running, write_config
from tests.support import free_port
from tests.traffic import Crowd, WebBurst, messages

pytestmark = pytest.mark.slow

MESSAGES = 600
ROOT = Path(__file__).resolve().parent.parent
QUERY = "subject:message 7"  # a bulk delete of every message whose subject says so

DEFERRING = """
[[route]]
match = "*"
action = "relay"
upstream = "nowhere"
[upstream.nowhere]
host = "127.0.0.1"
port = {port}
tls = "none"
breaker_failures = 0  # every recipient is deferred on its own, for the operator to act on
[delivery]
retry_schedule = [3600.0]
"""


def _final_state(db: Path) -> tuple[dict[str, tuple[bool, str]], dict[str, set[str]]]:
    """Each stored message's (read, subject), and each message's recipient statuses."""
    with sqlite3.connect(db) as conn:
        messages = {
            str(i): (bool(r), str(s))
            for i, r, s in conn.execute("SELECT id, read, subject FROM message")
        }
        statuses: dict[str, set[str]] = {}
        for message_id, status in conn.execute("SELECT message_id, status FROM recipient"):
            statuses.setdefault(str(message_id), set()).add(str(status))
    return messages, statuses


def test_concurrent_writers_never_lock_out_ingest(tmp_path: Path, figures: dict[str, str]) -> None:
    """Every message gets 250 (never 451) while the web and another process write; the
    server logs no lock error; each answered write is found in the database after."""
    ports = Ports.free()
    db = tmp_path / "relay.db"
    config = write_config(tmp_path / "relay.toml", ports, db, DEFERRING.format(port=free_port()))
    stop = tmp_path / "stop"
    server = Serving(config).ready()
    operator = subprocess.Popen(
        [sys.executable, "-m", "tests.operator_process", f"sqlite+aiosqlite:///{db}", str(stop)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert operator.stdout is not None
    assert operator.stdout.readline().strip() == "ready", operator.communicate()[1]
    crowd = Crowd(ports.smtp, messages(MESSAGES, seed=9)).start()
    web = WebBurst(
        f"http://127.0.0.1:{ports.web}",
        crowd,
        eligible=lambda message_id: message_id[-1] not in MINE,
        query=QUERY,
        delete_all_after=20,
    )
    web.start()
    try:
        crowd.join()
        web.join(120)
        stop.touch()
        out, err = operator.communicate(timeout=120)
        assert server.end(signal.SIGTERM) == 0
    finally:
        operator.kill()
        kill_if_running(server)
    log = server.text()
    assert crowd.replies == Counter({250: MESSAGES}), (crowd.replies, crowd.errors)
    assert crowd.errors == []
    assert web.error is None and not web.is_alive()
    assert operator.returncode == 0, err
    assert "locked" not in log and "could not store" not in log, log[-3000:]

    stored, statuses = _final_state(db)
    assert web.deleted_all
    assert not web.deleted & stored.keys()
    assert all(stored[i][0] for i in web.read if i in stored)  # unless the bulk delete took it
    done = [json.loads(line) for line in out.splitlines()]
    acted = Counter(d["action"] for d in done if d["changed"])
    for d in done:
        message_id, action = d["id"], d["action"]
        if not d["changed"] or (message_id not in stored and action != "delete"):
            continue  # a recipient being sent is left alone; or the bulk delete took it
        if action == "delete":
            assert message_id not in stored
        elif action == "hold":
            assert statuses[message_id] == {"held"}
        elif action == "cancel":
            assert statuses[message_id] == {"cancelled"}
        elif action == "read":
            assert stored[message_id][0]
    assert acted["hold"] and acted["cancel"] and acted["delete"] and acted["retry"], acted
    figures["no database is locked"] = (
        f"{MESSAGES} messages all answered 250 while the web answered {web.answered} actions"
        f" and a bulk delete, and another process did {sum(acted.values())} operator"
        f" actions ({', '.join(f'{n} {a}' for a, n in sorted(acted.items()))})"
    )
