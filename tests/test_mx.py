"""MX routing: dnspython asking a loopback DNS server (the one mocked edge), real upstreams."""

from __future__ import annotations

import dataclasses
import random

import pytest

from relay.config import Config, MxConfig, RouteConfig
from relay.delivery import mx
from relay.delivery.mx import MxHost, MxResolver
from relay.errors import DeliveryError
from relay.status import Status
from tests.dns_server import FakeDns, Records
from tests.queueing import new_message, relay_config, running_worker, wait_for_status
from tests.upstream import Upstream

TO_MX = (RouteConfig(match="*", action="relay", upstream="mx"),)

ZONE: Records = {
    ("example.test", "MX"): [
        "20 second.example.test.",
        "5 dead.example.test.",
        "10 first.example.test.",
    ],
    ("dead.example.test", "A"): ["127.0.0.2"],  # nothing listens there: refused
    ("first.example.test", "A"): ["127.0.0.3"],
    ("second.example.test", "A"): ["127.0.0.1"],
    ("second.example.test", "AAAA"): ["::1"],
    ("plain.test", "A"): ["127.0.0.1"],  # no MX: the domain is its own mail host
    ("null.test", "MX"): ["0 ."],
    ("equal.test", "MX"): ["10 a.equal.test.", "10 b.equal.test.", "10 c.equal.test."],
    ("a.equal.test", "A"): ["127.0.0.1"],
    ("b.equal.test", "A"): ["127.0.0.1"],
    ("c.equal.test", "A"): ["127.0.0.1"],
    ("nowhere.test", "MX"): ["10 missing.nowhere.test."],
    ("nowhere.test", "TXT"): ['"no addresses here"'],
}


async def test_hosts_come_in_preference_order_with_their_addresses() -> None:
    """MX records sorted by preference, each host with its IPv4 then IPv6 addresses."""
    with FakeDns(ZONE) as dns:
        hosts = await MxResolver(dns.resolver()).hosts("Example.Test.")
    assert hosts == [
        MxHost("dead.example.test", 5, ("127.0.0.2",)),
        MxHost("first.example.test", 10, ("127.0.0.3",)),
        MxHost("second.example.test", 20, ("127.0.0.1", "::1")),
    ]


async def test_equal_preferences_are_tried_in_random_order() -> None:
    """Hosts of equal preference are shuffled (RFC 5321 5.1), spreading the load."""
    orders = set()
    with FakeDns(ZONE) as dns:
        for seed in range(12):
            resolver = MxResolver(dns.resolver(), random.Random(seed))
            orders.add(tuple(h.name for h in await resolver.hosts("equal.test")))
    assert len(orders) > 1
    assert all(
        sorted(order) == ["a.equal.test", "b.equal.test", "c.equal.test"] for order in orders
    )


async def test_a_domain_without_mx_is_its_own_mail_host() -> None:
    """No MX record: the domain's A/AAAA records are used (implicit MX)."""
    with FakeDns(ZONE) as dns:
        hosts = await MxResolver(dns.resolver()).hosts("plain.test")
    assert hosts == [MxHost("plain.test", 0, ("127.0.0.1",))]


@pytest.mark.parametrize(
    ("domain", "enhanced", "transient"),
    [
        ("missing.test", mx.NO_SUCH_DOMAIN, False),
        ("null.test", mx.NULL_MX, False),
        ("broken.test", mx.DNS_FAILED, True),
        ("nowhere.test", mx.NO_ROUTE, True),
    ],
)
async def test_dns_failures(domain: str, enhanced: str, transient: bool) -> None:
    """No such domain and null MX fail for good; SERVFAIL or hosts without addresses defer."""
    with FakeDns(ZONE, failing=("broken.test",)) as dns, pytest.raises(DeliveryError) as raised:
        await MxResolver(dns.resolver()).hosts(domain)
    assert (raised.value.enhanced, raised.value.transient) == (enhanced, transient)


async def test_mx_routing_delivers_to_the_most_preferred_reachable_host(sqlite_url: str) -> None:
    """The unreachable preference-5 host is skipped; preference 10 gets it, not 20."""
    with (
        Upstream("127.0.0.1").start() as second,
        Upstream("127.0.0.3", second.port).start() as first,
        FakeDns(ZONE) as dns,
    ):
        config = _with_mx(relay_config(sqlite_url, {}, TO_MX), second.port)
        async with running_worker(config, resolver=MxResolver(dns.resolver())) as (store, _):
            new = new_message(["bob@example.test"], rules=TO_MX)
            await store.add_message(new)
            await wait_for_status(store, new.id, {"bob@example.test": Status.DELIVERED})
            (attempt,) = await store.timeline.attempts(new.id)
    assert [t.rcpt_tos for t in first.delivered] == [("bob@example.test",)]
    assert second.transactions == []
    assert attempt.host == f"first.example.test[127.0.0.3]:{second.port}"


async def test_mx_routing_falls_back_to_the_a_record(sqlite_url: str) -> None:
    """A domain with only an A record gets its mail there."""
    with Upstream("127.0.0.1").start() as server, FakeDns(ZONE) as dns:
        config = _with_mx(relay_config(sqlite_url, {}, TO_MX), server.port)
        async with running_worker(config, resolver=MxResolver(dns.resolver())) as (store, _):
            new = new_message(["ann@plain.test"], rules=TO_MX)
            await store.add_message(new)
            await wait_for_status(store, new.id, {"ann@plain.test": Status.DELIVERED})
    assert server.delivered_to("ann@plain.test") == 1


async def test_mail_to_a_domain_that_does_not_exist_fails_at_once(sqlite_url: str) -> None:
    """NXDOMAIN fails the recipient (5.1.2) without any SMTP; other domains go on."""
    with Upstream("127.0.0.1").start() as server, FakeDns(ZONE) as dns:
        config = _with_mx(relay_config(sqlite_url, {}, TO_MX), server.port)
        async with running_worker(config, resolver=MxResolver(dns.resolver())) as (store, _):
            new = new_message(["x@missing.test", "ann@plain.test"], rules=TO_MX)
            await store.add_message(new)
            rows = await wait_for_status(
                store,
                new.id,
                {"x@missing.test": Status.FAILED, "ann@plain.test": Status.DELIVERED},
            )
    assert rows["x@missing.test"].last_enhanced == mx.NO_SUCH_DOMAIN
    assert [t.rcpt_tos for t in server.transactions] == [("ann@plain.test",)]


def _with_mx(config: Config, port: int) -> Config:
    """`config` with MX delivery on `port`, plain text (the test upstreams have no TLS)."""
    return dataclasses.replace(config, mx=MxConfig(port=port, tls="none"))
