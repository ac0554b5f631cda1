"""relay's pytest plugin (entry point `pytest11`): the `relay_server` and `mailbox` fixtures.

    def test_welcome_mail(relay_server, mailbox):
        send_welcome(mailbox.address("alice"), relay_server.smtp_host, relay_server.smtp_port)
        [message] = mailbox.wait_for(subject="Welcome")
        assert "alice" in message.text

`relay_server` is one relay for the session: started on free loopback ports with a
temporary SQLite file and chaos on, or the relay that `--relay-url` and `--relay-smtp`
(or RELAY_URL and RELAY_SMTP; RELAY_TOKEN for a [web] token) point at. `mailbox` is a
fresh set of addresses for each test. This module imports nothing heavy and starts
nothing until a test asks for a fixture (docs/testing.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from relay.testing.mailbox import Mailbox
    from relay.testing.server import RelayServer

URL_ENV = "RELAY_URL"
SMTP_ENV = "RELAY_SMTP"
TOKEN_ENV = "RELAY_TOKEN"


def pytest_addoption(parser: pytest.Parser) -> None:
    """--relay-url and --relay-smtp: use a relay that is already running."""
    group = parser.getgroup("relay", "relay's mail fixtures (relay_server, mailbox)")
    group.addoption(
        "--relay-url",
        metavar="URL",
        help=f"web URL of a running relay to use instead of starting one (or ${URL_ENV})",
    )
    group.addoption(
        "--relay-smtp",
        metavar="HOST:PORT",
        help=f"SMTP address of that relay (or ${SMTP_ENV})",
    )


def _given(config: pytest.Config) -> tuple[str | None, str | None]:
    """The running relay's URL and SMTP address, from the options or the environment."""
    url = config.getoption("relay_url") or os.environ.get(URL_ENV) or None
    smtp = config.getoption("relay_smtp") or os.environ.get(SMTP_ENV) or None
    return url, smtp


def pytest_configure(config: pytest.Config) -> None:
    """Refuse half of a running relay at once (a URL without an SMTP address, or the reverse)."""
    url, smtp = _given(config)
    if bool(url) != bool(smtp):
        raise pytest.UsageError(
            f"a running relay needs both --relay-url and --relay-smtp ({URL_ENV} and {SMTP_ENV})"
        )


@pytest.fixture(scope="session")
def relay_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayServer]:
    """A relay for the whole session: `smtp_host`, `smtp_port`, `web_url` and `api`."""
    from relay.testing import server

    url, smtp = _given(request.config)
    if url and smtp:
        yield server.external(url, smtp, os.environ.get(TOKEN_ENV, ""))
        return
    started = server.start(tmp_path_factory.mktemp("relay"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def mailbox(relay_server: RelayServer) -> Iterator[Mailbox]:
    """Addresses unique to this test, its mail, and chaos for it alone."""
    from relay.testing.mailbox import Mailbox

    box = Mailbox(relay_server.api)
    try:
        yield box
    finally:
        box.close()
