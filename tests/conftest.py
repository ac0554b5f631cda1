"""Shared fixtures: database URLs for the three backends and a running relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# relay imports the PostgreSQL and MySQL dialects only for a connection of their own (and
# Alembic brings them to migrate). pytester takes the modules a test imported out of
# sys.modules after it, and SQLAlchemy's dialects register their SQL functions once per
# import: a second import warns (an error here). Imported now, they are never taken out.
import sqlalchemy.dialects.mysql
import sqlalchemy.dialects.postgresql  # noqa: F401

from relay.config import StorageConfig
from relay.store import Store
from tests import mysql, pg
from tests.browsing import ARGS, CHROMIUM, HAVE_CHROMIUM
from tests.support import RunningRelay, make_config

if HAVE_CHROMIUM:
    from playwright.sync_api import Browser, Page, sync_playwright


def _fresh_database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'relay.db'}"
        return
    with mysql.fresh_database() if kind == "mysql" else pg.fresh_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, for what only PostgreSQL does (NOTIFY, several
    processes on one database)."""
    with pg.fresh_database() as url:
        yield url


BACKENDS = ["sqlite", "postgres", "mysql"]
"""The databases the parametrized tests run on (MySQL: MariaDB or MySQL, tests/mysql.py)."""


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MySQL (or MariaDB) database, for what only MySQL does."""
    with mysql.fresh_database() as url:
        yield url


@pytest.fixture(params=["postgres", "mysql"])
def shared_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database that several processes share (PostgreSQL, MySQL): not SQLite."""
    with mysql.fresh_database() if request.param == "mysql" else pg.fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL or MySQL database."""
    yield from _fresh_database(request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`db_url` shared by the tests of one module."""
    yield from _fresh_database(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in the test's own directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture
def relay(sqlite_url: str) -> Iterator[RunningRelay]:
    """A relay capturing into a SQLite file, on free loopback ports."""
    running = RunningRelay(make_config(sqlite_url)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh database (SQLite file, then PostgreSQL)."""
    opened = Store(StorageConfig(url=db_url))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh SQLite file."""
    opened = Store(StorageConfig(url=sqlite_url))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


FIGURES = pytest.StashKey[dict[str, str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, str]:
    """Figures a test measured (peak memory, counts), printed at the end of the run."""
    return request.config.stash.setdefault(FIGURES, {})


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands the figures it measured to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["figures"] = dict(session.config.stash.get(FIGURES, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist, the controller gathers the figures each worker measured."""
    measured = getattr(node, "workeroutput", {}).get("figures", {})
    node.config.stash.setdefault(FIGURES, {}).update(measured)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the reliability tests measured (docs/reliability.md quotes them)."""
    measured = terminalreporter.config.stash.get(FIGURES, {})
    if measured:
        terminalreporter.section("figures measured by this run")
        for name, value in sorted(measured.items()):
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (no browser download), one per module."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab with its own cookies; fails the test on a dialog."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        yield tab
    finally:
        context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"
