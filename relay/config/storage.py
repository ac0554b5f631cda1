"""[storage]: where messages and the queue are kept, and how long mail is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from relay.config.dburl import database_url
from relay.config.durations import check_duration, parse_duration
from relay.config.settings import setting
from relay.config.values import check_url, non_negative, positive


@dataclass(frozen=True)
class StorageConfig:
    """[storage]: where messages and the queue are kept."""

    url: str = setting(
        "sqlite+aiosqlite:///relay.db",
        "Database URL (SQLite file, PostgreSQL, MySQL or MariaDB); RELAY_DATABASE_URL"
        " overrides it.",
        check_url,
        convert=database_url,
    )
    sqlite_synchronous: Literal["full", "normal"] = setting(
        "full",
        "SQLite fsync policy: full survives a power cut (the promise of a 250); normal is faster"
        " and may lose the last commits on power loss (never on a process crash).",
    )
    busy_timeout: float = setting(
        5.0, "Seconds a SQLite write waits for another process's lock before failing.", positive
    )
    max_messages: int = setting(
        0,
        "Retention: keep at most this many messages, deleting the oldest captured, delivered,"
        " failed or cancelled ones beyond it (never mail still queued, deferred, held or"
        " being sent); 0: no limit.",
        non_negative,
    )
    max_age: str = setting(
        "",
        "Retention: delete captured, delivered, failed or cancelled mail older than this:"
        ' "7d", "12h", "30m", "45s" or seconds ("3600"); "": keep it forever.',
        check_duration,
    )
    prune_interval: float = setting(
        60.0, "Seconds between two retention runs (when max_messages or max_age is set).", positive
    )

    @property
    def max_age_seconds(self) -> float:
        """`max_age` in seconds; 0 when mail is kept forever."""
        return parse_duration(self.max_age) if self.max_age else 0.0

    @property
    def retention(self) -> bool:
        """Whether old mail is pruned at all."""
        return self.max_messages > 0 or self.max_age_seconds > 0

    auto_migrate: bool = setting(
        False,
        "Upgrade an out-of-date database schema at start; false: relay stops and asks for"
        " `relay db upgrade`. An empty database always gets the schema at first start.",
    )
    pool_size: int = setting(
        10,
        "PostgreSQL, MySQL: connections each relay process keeps open; bursts may open as"
        " many again, and on PostgreSQL one more listens for other processes' changes.",
        positive,
    )
    change_poll: float = setting(
        0.05,
        "MySQL, MariaDB: seconds between two looks at the changes other relay processes"
        " committed (they have no LISTEN/NOTIFY): the longest a worker idles before it"
        " sends mail another process accepted.",
        positive,
    )
