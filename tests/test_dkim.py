"""DKIM: relayed mail whose From domain has a key arrives signed (checked with dkimpy and a
stubbed DNS answer), other mail unsigned, the stored message unchanged; one signature per
message; `relay dkim keygen`; a key that cannot be used stops start-up."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relay.config import Config, RouteConfig, load_config
from relay.config.dkim import DkimConfig
from relay.delivery.signing import SIGNING, from_domain
from relay.errors import ConfigError
from relay.status import Status
from tests.queueing import (
    new_message,
    raw_message,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)
from tests.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
SELECTOR = "s1"
DOMAIN = "example.com"  # the From domain of tests.queueing.raw_message


def keygen(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `relay dkim keygen ARGS` in `directory`."""
    return subprocess.run(
        [sys.executable, "-m", "relay", "dkim", "keygen", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=directory,
    )


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A key made by `relay dkim keygen example.com s1 --json`: its file and TXT record."""
    directory = tmp_path_factory.mktemp("dkim")
    done = keygen(directory, DOMAIN, SELECTOR, "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    return directory / made["key_file"], str(made["txt"])


def dns(txt: str) -> object:
    """dkimpy's DNS lookup, stubbed: the key's record at s1._domainkey.example.com only."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        wanted = f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return txt.encode() if name == wanted else None

    return lookup


def signing(config: Config, key_file: Path) -> Config:
    """`config` signing mail from example.com with the key in `key_file`."""
    table = DkimConfig(selector=SELECTOR, key_file=str(key_file), key=key_file.read_bytes())
    return dataclasses.replace(config, dkim=types.MappingProxyType({DOMAIN: table}))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A running recording upstream on 127.0.0.1."""
    with Upstream().start() as server:
        yield server


async def test_relayed_mail_from_a_signing_domain_arrives_signed(
    db_url: str, upstream: Upstream, key: tuple[Path, str]
) -> None:
    """What the upstream received carries a DKIM-Signature (rsa-sha256, relaxed/relaxed,
    From, Subject and Message-ID signed) that dkimpy verifies; the stored message has none."""
    key_file, txt = key
    config = signing(relay_config(db_url, {"smarthost": upstream_at(upstream.port)}), key_file)
    async with running_worker(config) as (store, _):
        new = new_message(["bob@example.net"])
        await store.add_message(new)
        await wait_for_status(store, new.id, {"bob@example.net": Status.DELIVERED})
        stored = await store.messages.raw(new.id)
    (received,) = upstream.delivered
    assert received.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert dkim.verify(received.data, dnsfunc=dns(txt))
    head = received.data.split(b"\r\n\r\n")[0].decode()
    assert f"d={DOMAIN};" in head and f"s={SELECTOR};" in head
    signed = head.split("h=", 1)[1].split(";")[0].replace(" ", "").replace("\r\n", "").split(":")
    assert {"from", "subject", "message-id", "to"} <= set(signed)
    assert stored == new.raw and b"DKIM-Signature" not in stored


async def test_mail_from_a_domain_without_a_key_is_not_signed(
    sqlite_url: str, upstream: Upstream, key: tuple[Path, str]
) -> None:
    """A From at another domain (or none at all) goes out exactly as stored."""
    config = signing(relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)}), key[0])
    other = raw_message().replace(b"sender@example.com", b"sender@elsewhere.test")
    async with running_worker(config) as (store, worker):
        new = new_message(["bob@example.net"], raw=other)
        await store.add_message(new)
        await wait_for_status(store, new.id, {"bob@example.net": Status.DELIVERED})
        assert worker.signer.signed == 0
    assert b"DKIM-Signature" not in upstream.delivered[0].data


async def test_one_signature_serves_every_destination_of_a_message(
    sqlite_url: str, upstream: Upstream, key: tuple[Path, str]
) -> None:
    """A message for two upstreams (two transactions) is signed once: both get the same
    header, and both verify."""
    routes = (
        RouteConfig(match="other.test", action="relay", upstream="other"),
        RouteConfig(match="*", action="relay", upstream="smarthost"),
    )
    with Upstream().start() as other:
        upstreams = {"smarthost": upstream_at(upstream.port), "other": upstream_at(other.port)}
        config = signing(relay_config(sqlite_url, upstreams, routes), key[0])
        async with running_worker(config) as (store, worker):
            new = new_message(["a@example.net", "b@other.test"], rules=routes)
            await store.add_message(new)
            await wait_for_status(
                store, new.id, {"a@example.net": Status.DELIVERED, "b@other.test": Status.DELIVERED}
            )
            assert worker.signer.signed == 1
        copies = [upstream.delivered[0].data, other.delivered[0].data]
    assert copies[0] == copies[1]
    assert all(dkim.verify(copy, dnsfunc=dns(key[1])) for copy in copies)


async def test_a_large_message_is_signed_off_the_event_loop(
    sqlite_url: str, upstream: Upstream, key: tuple[Path, str]
) -> None:
    """Signing runs in the DKIM pool's threads, whatever the size; a 2 MB message arrives
    signed and verifies."""
    thread = await SIGNING.run(1, threading.current_thread)
    assert thread is not threading.main_thread() and thread.name.startswith("relay-dkim")
    body = "".join(f"line {i} of a long report, wrapped as mail is.\r\n" for i in range(45_000))
    config = signing(relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)}), key[0])
    async with running_worker(config) as (store, _):
        new = new_message(["bob@example.net"], raw=raw_message(body=body))
        await store.add_message(new)
        await wait_for_status(store, new.id, {"bob@example.net": Status.DELIVERED})
    assert dkim.verify(upstream.delivered[0].data, dnsfunc=dns(key[1]))


@pytest.mark.parametrize(
    ("header", "domain"),
    [
        (b"From: Sender <Sender@Example.COM.>\r\n", "example.com"),
        (b"From: a@one.test, b@two.test\r\n", "one.test"),
        (b'From: "Doe, Jane" <jane@doe.test>\r\n', "doe.test"),
        (b"From: undisclosed\r\n", None),
        (b"Subject: no from\r\n", None),
    ],
)
def test_the_from_domain_is_read_from_the_header(header: bytes, domain: str | None) -> None:
    """The domain of the From header's first address, lower case; None without one."""
    assert from_domain(header + b"To: x@y.test\r\n\r\nFrom: body@not.this\r\n") == domain


def test_keygen_writes_a_private_key_and_prints_its_record(tmp_path: Path) -> None:
    """The key file is mode 0600 and loads as [dkim] config; the printed record is
    SELECTOR._domainkey.DOMAIN TXT with the public key; an existing file is never
    overwritten."""
    done = keygen(tmp_path, "Example.COM", "mail2024")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "dkim" / "example.com.mail2024.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 'mail2024._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MII' in done.stdout
    assert '[dkim."example.com"]' in done.stdout
    config_file = tmp_path / "relay.toml"
    config_file.write_text(f'[dkim."example.com"]\nselector = "mail2024"\nkey_file = "{path}"\n')
    assert load_config(config_file, env={}).dkim["example.com"].key.startswith(b"-----BEGIN RSA")
    again = keygen(tmp_path, "example.com", "mail2024")
    assert again.returncode == 2 and "never overwrites" in again.stderr


@pytest.mark.parametrize("args", [["not a domain", "s1"], ["example.com", "bad selector"]])
def test_keygen_refuses_a_bad_domain_or_selector(tmp_path: Path, args: list[str]) -> None:
    """Exit 2 with the reason, and no file written."""
    done = keygen(tmp_path, *args)
    assert done.returncode == 2 and done.stderr.startswith("relay: ")
    assert not (tmp_path / "dkim").exists()


def _ec_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "a readable key file"),
        (b"not a key\n", "an unencrypted PEM private key"),
        (_ec_key(), "an RSA key"),
    ],
    ids=["missing", "garbage", "not-rsa"],
)
def test_a_key_that_cannot_sign_stops_start_up(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    """check-config (the loader `relay serve` uses) exits 2 naming the [dkim] table's
    key_file and what is wrong with it."""
    key_file = tmp_path / "key.pem"
    if content is not None:
        key_file.write_bytes(content)
    config_file = tmp_path / "relay.toml"
    config_file.write_text(f'[dkim."example.com"]\nselector = "s1"\nkey_file = "{key_file}"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(config_file, env={})
    assert raised.value.key == 'dkim."example.com".key_file'
    assert expected in raised.value.expected
    checked = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 2
    assert 'dkim."example.com".key_file: expected' in checked.stderr
