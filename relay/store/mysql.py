"""MySQL and MariaDB: the engine's settings, the types and table options the schema gets
there, and the character-set check made at start.

The engine (asyncmy, docs/operations.md says why):
- `charset = utf8mb4`: the connection speaks full UTF-8 (MySQL's `utf8` is three bytes a
  character at most and cannot hold an emoji);
- `READ COMMITTED`, as PostgreSQL: a statement sees what committed before it, and
  `FOR UPDATE SKIP LOCKED` claims lock only the rows they take (no gap locks);
- `sql_mode` strict: a value that does not fit is an error, never silently cut;
- `time_zone = '+00:00'`: relay stores epoch seconds, but nothing depends on the server's zone;
- pre-ping and recycling: MySQL closes connections idle for `wait_timeout` (8 hours by
  default); a dead one is found before use instead of failing an operation.

Types (DDL only; what the code reads and writes is the same): Float is a 4-byte FLOAT on
MySQL, too coarse for epoch seconds, so it becomes DOUBLE; Text is 64 KB at most there, so
it becomes LONGTEXT; LargeBinary becomes LONGBLOB (message_text.text too: compressed
there, relay.store.rawzip). Every table is created with
`utf8mb4` and the binary collation `utf8mb4_bin`: text compares as its bytes do, as on
PostgreSQL and SQLite, so "Tag" and "tag", or "é" and "e", stay two values where the schema
says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Float, LargeBinary, String, Text, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import DDLCompiler, GenericTypeCompiler

from relay.config import StorageConfig
from relay.errors import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

DIALECTS = ("mysql", "mariadb")
"""SQLAlchemy's names for the two (the mariadb:// URL gives the second)."""
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"
SQL_MODE = (
    "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)
"""Strict: a value too long for its column is refused, not cut."""
ISOLATION = "READ COMMITTED"
RECYCLE = 3600
"""Seconds before a pooled connection is replaced (below MySQL's 8-hour wait_timeout)."""
KEY_LENGTH = 700
"""Characters of a text column that is a key (InnoDB keys hold 3072 bytes; utf8mb4 takes
up to 4 a character, and a recipient's key is this with its 26-character message id)."""
DEADLOCK = 1213
"""InnoDB's error number for a transaction chosen as a deadlock's victim."""
PG_DEADLOCK = "40P01"
"""PostgreSQL's SQLSTATE for the same (claims and results of processes sharing the queue
can cross there too)."""
DEADLOCK_TRIES = 5
"""Tries of a delivery-queue transaction that keeps being a deadlock's victim."""
SIZE = (
    "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"
    " WHERE table_schema = DATABASE()"
)
"""Bytes the database's tables and indexes take, as InnoDB counts them."""
LSN = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN"
    " ('Innodb_lsn_current', 'Innodb_redo_log_current_lsn')"
)
"""InnoDB's redo log position (MariaDB's name, then MySQL 8's), which every commit that
wrote anything moves before it is visible: the whole server's, as on PostgreSQL."""


def is_mysql(dialect_name: str) -> bool:
    """Whether a dialect name is MySQL's or MariaDB's."""
    return dialect_name in DIALECTS


def key_text() -> Any:
    """Text that is a primary or unique key: VARCHAR(KEY_LENGTH) on MySQL, text elsewhere."""
    return Text().with_variant(String(KEY_LENGTH), *DIALECTS)


def engine(url: URL, storage: StorageConfig) -> AsyncEngine:
    """The pool of a MySQL or MariaDB database, set up as the module says."""
    return create_async_engine(
        url,
        pool_size=storage.pool_size,
        max_overflow=storage.pool_size,
        pool_pre_ping=True,
        pool_recycle=RECYCLE,
        isolation_level=ISOLATION,
        connect_args={
            "charset": CHARSET,
            "init_command": f"SET sql_mode = '{SQL_MODE}', time_zone = '+00:00'",
        },
    )


def deadlocked(exc: DBAPIError) -> bool:
    """Whether an error is the rollback of a deadlock's victim (worth a retry): InnoDB's,
    or PostgreSQL's (SQLSTATE 40P01)."""
    if getattr(exc.orig, "pgcode", None) == PG_DEADLOCK:
        return True
    args: tuple[Any, ...] = tuple(getattr(exc.orig, "args", ()))
    return bool(args) and args[0] == DEADLOCK


async def retry_deadlocks(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """Run `work` in a transaction of `engine`, again (up to DEADLOCK_TRIES in all) while
    the database rolls it back as a deadlock's victim: claims and results of processes
    that share the queue can cross, and the whole transaction is safe to repeat."""
    for _ in range(DEADLOCK_TRIES - 1):
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        except DBAPIError as exc:
            if not deadlocked(exc):
                raise
            log.info("a delivery-queue transaction was a deadlock's victim; trying again")
    async with engine.begin() as conn:
        return await conn.run_sync(work)


@compiles(Float, "mysql")
@compiles(Float, "mariadb")
def _double(type_: Float[Any], compiler: GenericTypeCompiler, **kw: Any) -> str:
    return "DOUBLE"


@compiles(Text, "mysql")
@compiles(Text, "mariadb")
def _long_text(type_: Text, compiler: GenericTypeCompiler, **kw: Any) -> str:
    return "LONGTEXT"


@compiles(LargeBinary, "mysql")
@compiles(LargeBinary, "mariadb")
def _long_blob(type_: LargeBinary, compiler: GenericTypeCompiler, **kw: Any) -> str:
    return "LONGBLOB"


_NAMED_PRIMARY = re.compile(r"CONSTRAINT \S+ PRIMARY KEY")


@compiles(CreateTable, "mysql")
@compiles(CreateTable, "mariadb")
def _create_table(element: CreateTable, compiler: DDLCompiler, **kw: Any) -> str:
    # MySQL names every primary key PRIMARY, and warns about any other name.
    sql = _NAMED_PRIMARY.sub("PRIMARY KEY", compiler.visit_create_table(element, **kw))  # type: ignore[no-untyped-call]
    if "CHARSET" in sql.upper().rsplit(")", 1)[-1]:
        return sql
    return f"{sql.rstrip()} ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}"


async def check_charset(engine: AsyncEngine) -> None:
    """Raise StoreError with `charset_problem`'s sentence when there is a problem."""
    async with engine.connect() as conn:
        problem = await charset_problem(conn)
    if problem:
        raise StoreError(problem)


async def charset_problem(conn: AsyncConnection) -> str | None:
    """A sentence saying what to change when the database, or one of its tables, does not
    use utf8mb4; None when all is well."""
    database, charset = (
        await conn.execute(
            text(
                "SELECT schema_name, default_character_set_name FROM information_schema.schemata"
                " WHERE schema_name = DATABASE()"
            )
        )
    ).one()
    if charset != CHARSET:
        return (
            f"the MySQL database {database} uses the character set {charset}, which cannot"
            f" hold every message's text: relay needs {CHARSET}. Change it with"
            f" `ALTER DATABASE `{database}` CHARACTER SET {CHARSET} COLLATE {COLLATION};`"
            " (before relay creates its tables), or point [storage] url at a database"
            f" created with CHARACTER SET {CHARSET}."
        )
    wrong = (
        await conn.execute(
            text(
                "SELECT table_name, table_collation FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
                " AND table_collation NOT LIKE :charset ORDER BY table_name"
            ),
            {"charset": f"{CHARSET}\\_%"},
        )
    ).all()
    if wrong:
        name, collation = wrong[0]
        return (
            f"the table {name} of MySQL database {database} uses the collation {collation}"
            f" ({len(wrong)} table(s) in all): relay needs {CHARSET}. Change each with"
            f" `ALTER TABLE `{name}` CONVERT TO CHARACTER SET {CHARSET} COLLATE {COLLATION};`."
        )
    return None
