"""Schema migrations with Alembic: create an empty database, upgrade an old one, check one.

The one source of truth for a database's schema version is the revision Alembic records in
its `alembic_version` table; `head()` is the newest revision this relay's code knows (the
last module in relay/store/migrations/versions/). Checking costs one small query.

Everything here is synchronous and runs on a connection that relay.store.database hands
over (`AsyncConnection.run_sync`) inside a transaction it opened: an upgrade commits whole
or not at all. On PostgreSQL an advisory lock makes processes that start together migrate
one after the other (the later ones find the work done); on SQLite `BEGIN IMMEDIATE` does;
on MySQL a named lock (GET_LOCK) does, but there each DDL statement commits by itself:
an upgrade that fails halfway leaves the revisions it completed.

Alembic is imported only to migrate: finding the head revision (the revision lines of the
files in versions/) and a database's revision (a read of `alembic_version`) need none of
it, and importing it was a quarter of what `relay stats` and a server start cost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

from relay.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_REVISIONS = {2: "0001", 3: "0002"}
"""The revision of a database made before Alembic, by the version its `schema_info` says."""
LOCK_KEY = 0x72656C6179  # "relay": the PostgreSQL advisory lock held while migrating
LOCK_MYSQL = {"prefix": "relay-migrate:", "wait": 600}
"""MySQL's named lock held while migrating (the prefix of its name, which ends with the
SHA-1 of the database's name: named locks are the server's, and each database migrates on
its own), and the seconds another process waits for it."""
MYSQL_LOCK_NAME = "CONCAT(:prefix, SHA1(DATABASE()))"
"""The SQL of this database's migration lock name (54 characters: under MySQL's 64)."""
MYSQL_DIALECTS = ("mysql", "mariadb")
FILE_TEMPLATE = "m%%(rev)s_%%(slug)s"
SEARCH_INDEX_PREFIX = "message_fts"
"""SQLite's free-text search index (revision 0004): the FTS5 table, its shadow tables and
its state. They are kept in step by relay.store.indexer, not described in schema.py."""
SEARCH_INDEX_PG = "ix_message_text_trgm"
"""PostgreSQL's trigram index on message_text.text (revision 0004), there when pg_trgm is."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration for relay's migrations (no alembic.ini needed)."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts shipped with this relay."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def described(name: str | None, type_: str, _parents: object = None) -> bool:
    """Whether schema.py describes the database object `name` (Alembic's `include_name`):
    everything but the search index, which autogenerate and comparisons leave alone."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(SEARCH_INDEX_PREFIX)
    return not (type_ == "index" and name == SEARCH_INDEX_PG)


_REVISION = re.compile(r"""(?m)^(down_revision|revision)\s*(?::[^=]*)?=\s*["']?(\w+)["']?""")


@functools.cache
def head() -> str:
    """The newest revision this relay knows: the schema its code expects. Read from the
    `revision` and `down_revision` lines of versions/ (the one revision that none follows);
    Alembic's own reading of them when that is not one revision (tests compare the two)."""
    following: dict[str, str] = {}
    for path in (MIGRATIONS / "versions").glob("m*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            following[found["revision"]] = found.get("down_revision", "None")
    heads = set(following) - set(following.values())
    if len(heads) == 1:
        return heads.pop()
    newest = scripts().get_current_head()
    assert newest is not None, "no migrations"
    return newest


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its recorded revision, and whether it has any tables at all."""

    current: str | None
    head: str
    empty: bool = False
    legacy: bool = False

    @property
    def up_to_date(self) -> bool:
        """The database is at the revision this relay needs."""
        return self.current == self.head

    @property
    def known(self) -> bool:
        """The recorded revision is one of this relay's (older or the same)."""
        if self.current is None:
            return False
        from alembic.script.revision import RevisionError
        from alembic.util.exc import CommandError

        try:
            return scripts().get_revision(self.current) is not None
        except (CommandError, RevisionError):  # an id that no script has
            return False

    def describe(self) -> str:
        """The revision for messages: "0001", "none (empty)", "none (made by relay 0.1)"."""
        if self.current is not None:
            return self.current
        return "none (empty)" if self.empty else "none"


def _legacy(conn: Connection, tables: set[str]) -> str | None:
    """The revision of a database made by a relay that predates migrations, from the
    version in its `schema_info` table; None when it is not one."""
    if "schema_info" not in tables or "message" not in tables:
        return None
    version = conn.execute(text("SELECT max(version) FROM schema_info")).scalar()
    return LEGACY_REVISIONS.get(int(version)) if version is not None else None


def _recorded(conn: Connection) -> str | None:
    """The revision Alembic recorded in `alembic_version` (None: none recorded)."""
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise StoreError(f"the database records several schema revisions: {sorted(rows)}")
    return str(rows[0]) if rows else None


def state(conn: Connection) -> SchemaState:
    """The schema state of the database `conn` is connected to."""
    tables = set(inspect(conn).get_table_names())
    current = _recorded(conn) if "alembic_version" in tables else None
    legacy = _legacy(conn, tables) if current is None else None
    if legacy is not None:
        return SchemaState(legacy, head(), legacy=True)
    return SchemaState(current, head(), empty=not (tables - {"alembic_version"}))


def _lock(conn: Connection) -> None:
    """PostgreSQL: wait for any other process's migration to commit (until ours ends).
    MySQL: the same with a named lock of the session, held until `unlock` (its DDL
    commits statement by statement, so the lock cannot end with a transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif conn.dialect.name in MYSQL_DIALECTS:
        got = conn.execute(text(f"SELECT GET_LOCK({MYSQL_LOCK_NAME}, :wait)"), LOCK_MYSQL).scalar()
        if got != 1:
            raise StoreError("another process has been migrating the database for too long")


def unlock(conn: Connection) -> None:
    """MySQL: release the lock `_lock` took, after the caller's transaction committed (the
    last revision's number is written in it); a no-op elsewhere. A lost connection has
    released it already."""
    if conn.dialect.name in MYSQL_DIALECTS:
        with contextlib.suppress(DBAPIError):
            conn.execute(text(f"SELECT RELEASE_LOCK({MYSQL_LOCK_NAME})"), LOCK_MYSQL)


def _check_foreign_keys(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        problems = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
        if problems:
            raise StoreError(f"the migration broke foreign keys: {problems[:5]}")


def upgrade(conn: Connection, target: str = "head") -> SchemaState:
    """Bring the database to `target` inside the caller's transaction; return the state found.

    Takes the migration lock first (PostgreSQL; on MySQL the caller releases it with
    `unlock` after its commit), so the state is read after any other process's upgrade
    committed. A database made before migrations is stamped with its
    revision first. The caller commits.
    """
    _lock(conn)
    before = state(conn)
    from alembic import command

    if before.current is None and not before.empty:
        raise StoreError("the database has tables but no schema revision: it was not made by relay")
    config = alembic_config(conn)
    if before.legacy:
        assert before.current is not None
        command.stamp(config, before.current)
        log.info("database made before migrations: recorded as revision %s", before.current)
    command.upgrade(config, target)
    _check_foreign_keys(conn)
    return before


def settled(conn: Connection, _target: str = "") -> SchemaState:
    """The state once no other process is migrating (MySQL, whose DDL commits statement
    by statement: tables may be there before their revision is recorded). The caller
    releases the lock (`unlock`)."""
    _lock(conn)
    return state(conn)


def downgrade(conn: Connection, target: str) -> SchemaState:
    """Undo revisions down to `target` inside the caller's transaction; return the state
    found. The caller commits."""
    from alembic import command

    _lock(conn)
    before = state(conn)
    command.downgrade(alembic_config(conn), target)
    _check_foreign_keys(conn)
    return before


def draft(message: str, directory: Path | None = None) -> Path:
    """Write the next revision from what schema.py has and a database at head lacks.

    For developers (`make migration m="..."`). Alembic's autogenerate writes the operations
    it can see; read and correct the file before committing it. It goes in versions/, or in
    `directory`. Returns the new file's path.
    """
    from alembic import command
    from sqlalchemy import create_engine

    number = int(head()) + 1
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/draft.db")
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.begin() as conn:
            config = alembic_config(conn)
            if directory is not None:
                locations = [str(MIGRATIONS / "versions"), str(directory)]
                config.set_main_option("version_locations", os.pathsep.join(locations))
            script = command.revision(
                config,
                message,
                autogenerate=True,
                rev_id=f"{number:04d}",
                version_path=directory,
            )
        engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
