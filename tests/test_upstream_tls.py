"""TLS and AUTH to an upstream, with a test CA (trustme): verified, refused, opportunistic."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import trustme

from relay.config import load_config
from relay.delivery import retry
from relay.status import Status
from tests.queueing import new_message, relay_config, running_worker, upstream_at, wait_for_status
from tests.upstream import Upstream

A = "alice@example.com"
PASSWORD_VARIABLE = "TEST_SMARTHOST_PASSWORD"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 issued by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """The test CA's certificate as a PEM file."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def starttls_upstream(server_tls: ssl.SSLContext) -> Iterator[Upstream]:
    """An upstream that requires STARTTLS."""
    with Upstream(tls="starttls", ssl_context=server_tls).start() as server:
        yield server


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_tls_and_auth_to_upstream_verified_with_a_test_ca(
    mode: Literal["starttls", "implicit"],
    server_tls: ssl.SSLContext,
    ca_file: str,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    """relay.toml with tls, ca_file, username and password_env: delivered over TLS with AUTH."""
    with Upstream(tls=mode, ssl_context=server_tls, users={"relay": "s3cret"}).start() as server:
        toml = tmp_path / "relay.toml"
        toml.write_text(
            f"""
[storage]
url = "{sqlite_url}"
[delivery]
poll_interval = 3600.0
[[route]]
match = "*"
action = "relay"
upstream = "smarthost"
[upstream.smarthost]
host = "127.0.0.1"
port = {server.port}
tls = "{mode}"
ca_file = "{ca_file}"
username = "relay"
password_env = "{PASSWORD_VARIABLE}"
"""
        )
        config = load_config(toml, env={PASSWORD_VARIABLE: "s3cret"})
        assert "s3cret" not in repr(config)
        async with running_worker(config) as (store, _):
            new = new_message([A])
            await store.add_message(new)
            await wait_for_status(store, new.id, {A: Status.DELIVERED})
    (transaction,) = server.delivered
    assert transaction.tls
    assert transaction.auth_user == "relay"


async def test_certificate_from_an_unknown_ca_defers(
    starttls_upstream: Upstream, sqlite_url: str
) -> None:
    """Without the CA file the certificate does not verify: deferred as a TLS failure."""
    config = relay_config(
        sqlite_url, {"smarthost": upstream_at(starttls_upstream.port, tls="starttls")}
    )
    async with running_worker(config) as (store, _):
        new = new_message([A])
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
    assert rows[A].last_enhanced == retry.TLS_FAILED
    assert "certificate verify failed" in (rows[A].last_text or "")
    assert "[upstream.smarthost] ca_file or verify" in (rows[A].last_text or "")
    assert starttls_upstream.transactions == []


def plain_upstream_toml(tmp_path: Path, db_url: str, port: int, extra: str = "") -> Path:
    """A relay.toml relaying everything to [upstream.local] with only host and port (and
    `extra` keys), as a new user writes it."""
    path = tmp_path / "relay.toml"
    path.write_text(
        f"""
[storage]
url = "{db_url}"
[delivery]
poll_interval = 3600.0
[[route]]
match = "*"
action = "relay"
upstream = "local"
[upstream.local]
host = "127.0.0.1"
port = {port}
{extra}"""
    )
    return path


async def test_plain_upstream_with_only_host_and_port_delivers(
    sqlite_url: str, tmp_path: Path
) -> None:
    """An [upstream] with just host and port, to a server that offers no STARTTLS, delivers
    (tls defaults to opportunistic when there is no username)."""
    with Upstream().start() as plain:
        config = load_config(plain_upstream_toml(tmp_path, sqlite_url, plain.port), env={})
        assert config.upstream["local"].tls == "opportunistic"
        async with running_worker(config) as (store, _):
            new = new_message([A], route="relay:local")
            await store.add_message(new)
            await wait_for_status(store, new.id, {A: Status.DELIVERED})
    assert [(t.tls, t.rcpt_tos) for t in plain.delivered] == [(False, (A,))]


async def test_upstream_with_a_username_and_no_starttls_defers_naming_the_key(
    sqlite_url: str, tmp_path: Path
) -> None:
    """With a username tls defaults to required STARTTLS: a server without it gets no
    password, and the recorded reason names the key to change."""
    extra = f'username = "relay"\npassword_env = "{PASSWORD_VARIABLE}"\n'
    with Upstream(users={"relay": "s3cret"}).start() as plain:
        toml = plain_upstream_toml(tmp_path, sqlite_url, plain.port, extra)
        config = load_config(toml, env={PASSWORD_VARIABLE: "s3cret"})
        assert config.upstream["local"].tls == "starttls"
        async with running_worker(config) as (store, _):
            new = new_message([A], route="relay:local")
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
    assert rows[A].last_enhanced == retry.TLS_FAILED
    assert '[upstream.local] tls = "starttls"' in (rows[A].last_text or "")
    assert plain.transactions == []
    assert all("MAIL" not in c.commands and c.auth_user is None for c in plain.connections)


async def test_required_starttls_that_is_not_offered_defers(sqlite_url: str) -> None:
    """tls = "starttls" never falls back to plain text."""
    with Upstream().start() as plain:
        config = relay_config(sqlite_url, {"smarthost": upstream_at(plain.port, tls="starttls")})
        async with running_worker(config) as (store, _):
            new = new_message([A])
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
        assert "STARTTLS" in (rows[A].last_text or "")
        assert plain.transactions == []


@pytest.mark.parametrize("offered", [True, False])
async def test_opportunistic_tls_uses_starttls_when_offered(
    offered: bool, server_tls: ssl.SSLContext, sqlite_url: str
) -> None:
    """Opportunistic: STARTTLS (unverified) when the server offers it, plain text otherwise."""
    server = Upstream(tls="starttls", ssl_context=server_tls) if offered else Upstream()
    with server.start():
        settings = upstream_at(server.port, tls="opportunistic", verify=False)
        config = relay_config(sqlite_url, {"smarthost": settings})
        async with running_worker(config) as (store, _):
            new = new_message([A])
            await store.add_message(new)
            await wait_for_status(store, new.id, {A: Status.DELIVERED})
    assert [t.tls for t in server.delivered] == [offered]


async def test_refused_login_defers(
    server_tls: ssl.SSLContext, ca_file: str, sqlite_url: str
) -> None:
    """A wrong password keeps the mail queued with the upstream's 535 reply."""
    with Upstream(tls="starttls", ssl_context=server_tls, users={"relay": "right"}).start() as s:
        settings = upstream_at(
            s.port, tls="starttls", ca_file=ca_file, username="relay", password="wrong"
        )
        config = relay_config(sqlite_url, {"smarthost": settings})
        async with running_worker(config) as (store, _):
            new = new_message([A])
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
    assert rows[A].last_code == 535
    assert s.transactions == []
