"""Database URLs as people type them, turned into the async drivers' URLs relay opens.

`relay.db`, `./data/relay.db` and `/var/lib/relay/relay.db` are SQLite files;
`sqlite:///relay.db` (relative) and `sqlite:////abs/path.db` (absolute) are the same in
SQLAlchemy's spelling; `postgresql://…` and `postgres://…` (Heroku's and libpq's) are
PostgreSQL; `mysql://…` and `mariadb://…` are MySQL or MariaDB. They become
`sqlite+aiosqlite://…`, `postgresql+asyncpg://…` and `mysql+asyncmy://…` (the asyncmy
driver: docs/operations.md says why), which are also accepted as they are, as are the
`+asyncmy`, `+aiomysql` and `+pymysql` spellings of MySQL's and MariaDB's URLs (all
opened with asyncmy). Plain string work: no SQLAlchemy import on the command line.
"""

from __future__ import annotations

SQLITE = "sqlite+aiosqlite://"
POSTGRESQL = "postgresql+asyncpg://"
MYSQL = "mysql+asyncmy://"
_SCHEMES = {
    "sqlite": SQLITE,
    "sqlite+aiosqlite": SQLITE,
    "postgresql": POSTGRESQL,
    "postgres": POSTGRESQL,
    "postgresql+asyncpg": POSTGRESQL,
    **{
        f"{name}{driver}": MYSQL
        for name in ("mysql", "mariadb")
        for driver in ("", "+asyncmy", "+aiomysql", "+pymysql")
    },
}
ACCEPTED = (
    "a SQLite file (relay.db, ./data/relay.db, /var/lib/relay/relay.db), sqlite:///relay.db,"
    " sqlite:////abs/path.db, postgresql://USER@HOST/DB, postgres://USER@HOST/DB,"
    " mysql://USER@HOST/DB or mariadb://USER@HOST/DB"
    " (sqlite+aiosqlite://, postgresql+asyncpg:// and mysql+asyncmy:// work too)"
)
"""The forms accepted, for the one line that answers any other."""


def database_url(text: str) -> str:
    """The async driver URL for `text`; ValueError when it is none of the ACCEPTED forms."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        if not text.strip() or ":" in text:
            raise ValueError(text)
        return f"{SQLITE}/{text}"
    driver = _SCHEMES.get(scheme.lower())
    if driver is None:
        raise ValueError(text)
    if driver == SQLITE and (not rest.startswith("/") or rest[1:].strip() in ("", ":memory:")):
        raise ValueError(text)  # a host, or no file: an in-memory database keeps nothing
    return driver + rest
