"""The link check: links found in a message, their HTTP status, and the request-forgery guard.

Real HTTP servers on loopback (tests/link_target.py); the only stub is DNS (a resolver
function mapping names to addresses). A second loopback address, 127.0.0.2, plays a
reachable server where a test needs one while 127.0.0.1 stays refused.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

import pytest
import trustme

from relay.checks.guard import AddressPolicy, Resolver, address_kind
from relay.checks.links import LinkCheckOptions, check_links, extract_links
from relay.config import ChecksConfig
from tests.link_target import serve

PRIVATE_OK = LinkCheckOptions(timeout=5.0, policy=AddressPolicy(allow_private=True))
ONLY_127_0_0_2 = LinkCheckOptions(
    timeout=5.0, policy=AddressPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),))
)


def resolver_of(names: dict[str, list[str]]) -> Resolver:
    """A DNS stub: each name resolves to its listed addresses; others do not resolve."""

    async def resolve(host: str) -> Sequence[str]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return names[host]

    return resolve


def test_links_come_from_html_and_text_once_each_http_only() -> None:
    """a href and img src of the HTML and URLs of the text, deduplicated, http(s) only."""
    html = (
        '<a href="https://shop.example/a?x=1&amp;y=2">A</a> <img src="http://cdn.example/i.png">'
        '<a href="mailto:x@example.com">m</a> <a href="/relative">r</a> <a href="#top">t</a>'
        '<a href="javascript:alert(1)">j</a> <img src="data:image/png;base64,AAAA">'
        '<a href="https://shop.example/a?x=1&y=2">again</a> <link href="https://css.example/s">'
    )
    text = (
        "See https://docs.example/guide. Or (https://wiki.example/Page_(x)), and\n"
        "ftp://files.example/f or <https://cdn.example/i.png>, again https://docs.example/guide"
    )
    assert extract_links(html, text) == [
        "https://shop.example/a?x=1&y=2",
        "http://cdn.example/i.png",
        "https://docs.example/guide",
        "https://wiki.example/Page_(x)",
        "https://cdn.example/i.png",
    ]


async def test_statuses_of_answering_links_and_errors_counted() -> None:
    """200 and 404 are reported with their text; a 404 counts as an error."""
    async with serve() as target:
        result = await check_links([target.url("/ok"), target.url("/missing")], options=PRIVATE_OK)
    assert result == {
        "Errors": 1,
        "Links": [
            {"URL": target.url("/ok"), "StatusCode": 200, "Status": "OK"},
            {"URL": target.url("/missing"), "StatusCode": 404, "Status": "Not Found"},
        ],
    }
    assert [method for method, _, _ in target.requests] == ["HEAD", "HEAD"]


async def test_get_when_head_is_refused() -> None:
    """A server that answers HEAD with 405 is asked again with GET, whose status counts."""
    async with serve() as target:
        result = await check_links([target.url("/no-head")], options=PRIVATE_OK)
    assert result["Links"][0]["StatusCode"] == 200
    assert [method for method, _, _ in target.seen("/no-head")] == ["HEAD", "GET"]


async def test_redirects_reported_or_followed_up_to_five() -> None:
    """Without follow a redirect is its 302; with follow each hop is requested, at most 5."""
    async with serve() as target:
        plain = await check_links([target.url("/chain/3")], options=PRIVATE_OK)
        followed = await check_links([target.url("/chain/5")], follow=True, options=PRIVATE_OK)
        too_many = await check_links([target.url("/chain/6")], follow=True, options=PRIVATE_OK)
    assert plain["Links"][0] | {"URL": ""} == {"URL": "", "StatusCode": 302, "Status": "Found"}
    assert followed["Links"][0]["StatusCode"] == 200 and followed["Errors"] == 0
    assert too_many["Links"][0]["StatusCode"] == 0
    assert too_many["Links"][0]["Status"] == "more than 5 redirects"
    assert too_many["Errors"] == 1
    assert [path for _, path, _ in target.requests[-6:]] == [f"/chain/{n}" for n in range(6, 0, -1)]


async def test_a_server_that_never_answers_times_out() -> None:
    """A link whose server does not answer within the timeout is an error saying so."""
    options = LinkCheckOptions(timeout=0.3, policy=AddressPolicy(allow_private=True))
    async with serve() as target:
        result = await check_links([target.url("/slow"), target.url("/ok")], options=options)
    slow, ok = result["Links"]
    assert slow == {"URL": target.url("/slow"), "StatusCode": 0, "Status": "timed out after 0.3 s"}
    assert ok["StatusCode"] == 200 and result["Errors"] == 1


async def test_requests_at_once_are_capped() -> None:
    """With a concurrency of 2, six slow links never have more than 2 requests in flight."""
    options = LinkCheckOptions(timeout=5.0, concurrency=2, policy=AddressPolicy(allow_private=True))
    async with serve() as target:
        urls = [target.url(f"/busy/{n}") for n in range(6)]
        result = await check_links(urls, options=options)
    assert [link["StatusCode"] for link in result["Links"]] == [200] * 6
    assert target.most_at_once == 2


async def test_waiting_for_a_turn_is_not_counted_against_the_time_limit() -> None:
    """Links queued behind the cap get their whole time limit once their turn comes."""
    options = LinkCheckOptions(timeout=1.0, concurrency=1, policy=AddressPolicy(allow_private=True))
    async with serve() as target:
        urls = [target.url(f"/busy/{n}") for n in range(8)]  # 8 x 0.2 s, one at a time
        result = await check_links(urls, options=options)
    assert [link["StatusCode"] for link in result["Links"]] == [200] * 8


async def test_loopback_refused_by_default_without_a_request() -> None:
    """With default settings a link to 127.0.0.1 is refused and the server sees nothing."""
    async with serve() as target:
        result = await check_links([target.url("/ok")])
    assert result["Links"] == [
        {
            "URL": target.url("/ok"),
            "StatusCode": 0,
            "Status": "refused: 127.0.0.1 is a loopback address",
        }
    ]
    assert result["Errors"] == 1 and target.requests == []


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("[ff02::1]", "multicast"),
        ("[::]", "unspecified"),
    ],
)
async def test_non_public_addresses_refused_by_kind(host: str, kind: str) -> None:
    """Each kind of non-public address is refused before any connection, and named."""
    result = await check_links([f"http://{host}/"])
    address = ipaddress.ip_address(host.strip("[]"))
    assert result["Links"][0]["StatusCode"] == 0
    assert result["Links"][0]["Status"] == f"refused: {address} is a {kind} address"


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass_the_guard(address: str) -> None:
    """A global unicast address is not refused."""
    assert address_kind(ipaddress.ip_address(address)) is None


async def test_redirect_to_loopback_refused() -> None:
    """A reachable server redirecting to 127.0.0.1 gets the redirect refused, unrequested."""
    async with serve("127.0.0.1") as inside, serve("127.0.0.2") as outside:
        link = outside.url(f"/to?url={inside.url('/ok')}")
        refused = await check_links([link], follow=True, options=ONLY_127_0_0_2)
        unfollowed = await check_links([link], options=ONLY_127_0_0_2)
        allowed = await check_links([link], follow=True, options=PRIVATE_OK)
        assert inside.seen("/ok") == [("HEAD", "/ok", f"127.0.0.1:{inside.port}")]
    assert refused["Links"][0] == {
        "URL": link,
        "StatusCode": 0,
        "Status": f"redirect to {inside.url('/ok')} refused: 127.0.0.1 is a loopback address",
    }
    assert unfollowed["Links"][0]["StatusCode"] == 302
    assert allowed["Links"][0]["StatusCode"] == 200


async def test_name_resolving_to_loopback_refused_and_reached_only_when_allowed() -> None:
    """A name that resolves to 127.0.0.1 is refused by default; allowed, the request goes
    to the address resolved once, carrying the name in its Host header."""
    async with serve() as target:
        link = f"http://shop.example:{target.port}/ok"
        resolver = resolver_of({"shop.example": ["127.0.0.1"]})
        refused = await check_links([link], resolver=resolver)
        allowed = await check_links([link], resolver=resolver, options=PRIVATE_OK)
    assert refused["Links"][0]["Status"] == (
        "refused: shop.example resolves to 127.0.0.1, a loopback address"
    )
    assert allowed["Links"][0]["StatusCode"] == 200
    assert target.requests == [("HEAD", "/ok", f"shop.example:{target.port}")]


async def test_any_non_public_answer_refuses_the_name() -> None:
    """A name with a public and a private address is refused: the guard takes no chances."""
    resolver = resolver_of({"mixed.example": ["93.184.216.34", "10.0.0.5"]})
    result = await check_links(["http://mixed.example/"], resolver=resolver)
    assert result["Links"][0]["Status"] == (
        "refused: mixed.example resolves to 10.0.0.5, a private address"
    )


async def test_unresolvable_name_is_an_error() -> None:
    """A name that does not resolve is an error saying so."""
    result = await check_links(["https://nowhere.example/x"], resolver=resolver_of({}))
    assert result["Links"][0]["StatusCode"] == 0
    assert result["Links"][0]["Status"].startswith("cannot resolve nowhere.example:")
    assert result["Errors"] == 1


async def test_https_to_the_pinned_address_verifies_the_name(tmp_path: Path) -> None:
    """https goes to the resolved address with the name in SNI: its certificate verifies."""
    ca = trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued = ca.issue_cert("shop.example")
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with serve(tls=(str(cert), str(key))) as target:
        link = f"https://shop.example:{target.port}/ok"
        resolver = resolver_of({"shop.example": ["127.0.0.1"]})
        result = await check_links([link], resolver=resolver, options=PRIVATE_OK, verify=context)
        by_address = await check_links([target.url("/ok")], options=PRIVATE_OK, verify=context)
    assert result["Links"][0]["StatusCode"] == 200
    assert by_address["Links"][0]["StatusCode"] == 0
    assert "certificate" in by_address["Links"][0]["Status"].lower()


@pytest.mark.parametrize(
    ("location", "status"),
    [
        ("ftp://files.example/f", "redirect to ftp://files.example/f: not an http or https URL"),
        (
            "https://xn--/",
            "redirect to an invalid URL (Malformed A-label, no Punycode eligible content found)",
        ),
    ],
)
async def test_redirect_to_a_bad_url_is_an_error(location: str, status: str) -> None:
    """A redirect to a non-http or broken URL is not followed: the link is an error saying why."""
    async with serve() as target:
        link = target.url(f"/to?url={location}")
        result = await check_links([link], follow=True, options=PRIVATE_OK)
    assert result["Links"][0] == {"URL": link, "StatusCode": 0, "Status": status}


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (
            "http://ex\x00ample/",
            "invalid URL (Invalid non-printable ASCII character in URL, '\\x00' at position 9.)",
        ),
        ("http://93.184.216.34:99999/", "invalid URL (port 99999)"),
        ("http:///path", "not an http or https URL"),
    ],
)
async def test_a_broken_link_is_an_error(url: str, status: str) -> None:
    """A link that is no valid http(s) URL is an error, not an exception."""
    result = await check_links([url])
    assert result["Links"][0] == {"URL": url, "StatusCode": 0, "Status": status}


def test_options_from_the_checks_section() -> None:
    """[checks] link_check_* keys set the timeout, the concurrency and private access."""
    checks = ChecksConfig(
        link_check_allow_private=True, link_check_timeout=3.0, link_check_concurrency=7
    )
    options = LinkCheckOptions.from_config(checks)
    assert (options.timeout, options.concurrency, options.policy.allow_private) == (3.0, 7, True)
    assert LinkCheckOptions.from_config(ChecksConfig()).policy == AddressPolicy()
