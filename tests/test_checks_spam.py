"""The spam check: a real spamd judges GTUBE spam and an order confirmation not; spamd absent,
dead, silent or confused gives a clear Error, never an exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from relay.checks.spam import Spamd, parse_rules
from relay.config import ChecksConfig
from tests.spamd import SPAMD, RunningSpamd
from tests.support import free_port

GTUBE_BODY = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE = (
    "From: shop@example.com\r\nTo: bob@example.org\r\nSubject: Test\r\n"
    "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMessage-ID: <gtube-1@shop.example.com>\r\n"
    f"\r\n{GTUBE_BODY}\r\n"
).encode()
ORDER = (
    b"From: Example Shop <orders@shop.example.com>\r\nTo: Bob <bob@example.org>\r\n"
    b"Subject: Your order 10234 is confirmed\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
    b"Message-ID: <order-10234@shop.example.com>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello Bob,\r\n\r\nthank you for your order 10234. We will send the two books you\r\n"
    b"ordered tomorrow and write again when they are on their way.\r\n\r\n"
    b"Kind regards,\r\nThe Example Shop team\r\n"
)

needs_spamd = pytest.mark.skipif(
    SPAMD is None, reason="spamd is not installed (Debian: apt-get install spamassassin spamd)"
)


@pytest.fixture(scope="module")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSpamd]:
    """A real spamd on a free loopback port, shared by this module's tests."""
    directory = tmp_path_factory.mktemp("spamd")
    directory.chmod(0o755)
    with RunningSpamd(directory) as running:
        yield running


@needs_spamd
async def test_gtube_is_spam_with_its_rules(spamd: RunningSpamd) -> None:
    """GTUBE is spam: score over 1000 and the GTUBE rule with its points and description."""
    result = await Spamd(spamd.address).check(GTUBE)
    assert result["IsSpam"] is True and result["Error"] == ""
    assert result["Score"] >= 1000
    gtube = [rule for rule in result["Rules"] if rule["Name"] == "GTUBE"]
    assert gtube == [
        {
            "Score": 1000.0,
            "Name": "GTUBE",
            "Description": "BODY: Generic Test for Unsolicited Bulk Email",
        }
    ]


@needs_spamd
async def test_order_confirmation_is_not_spam(spamd: RunningSpamd) -> None:
    """A plain order confirmation is not spam, and comes back without an error."""
    result = await Spamd(spamd.address).check(ORDER)
    assert result["IsSpam"] is False and result["Error"] == ""
    assert result["Score"] < 5.0
    assert all(rule["Name"] != "GTUBE" for rule in result["Rules"])


@needs_spamd
async def test_checks_of_several_messages_run_at_once(spamd: RunningSpamd) -> None:
    """Concurrent checks each get their own answer."""
    results = await asyncio.gather(*(Spamd(spamd.address).check(m) for m in (GTUBE, ORDER) * 2))
    assert [r["IsSpam"] for r in results] == [True, False, True, False]


async def test_dead_port_is_an_error() -> None:
    """Nothing listening: an Error saying spamd cannot be reached, no rules."""
    address = f"127.0.0.1:{free_port()}"
    result = await Spamd(address, timeout=5.0).check(GTUBE)
    assert result["Error"].startswith(f"spamd at {address} cannot be reached")
    assert (result["IsSpam"], result["Score"], result["Rules"]) == (False, 0.0, [])


async def serve_once(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    """A loopback TCP server that handles each connection with `answer`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that accepts, reads, and never answers until the test ends."""
    done = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()

    server, address = await serve_once(hold)
    yield address
    done.set()
    server.close()
    await server.wait_closed()


async def test_server_that_never_answers_times_out(silent: str) -> None:
    """A server that accepts and never answers gives a timeout Error within the timeout."""
    result = await asyncio.wait_for(Spamd(silent, timeout=0.3).check(GTUBE), timeout=5)
    assert result["Error"] == f"spamd at {silent} did not answer within 0.3 s"
    assert result["Rules"] == [] and result["IsSpam"] is False


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not a spamd reply: 'HTTP/1.1 400 Bad Request'"),
        (
            b"SPAMD/1.0 76 Bad header line: x\r\n",
            "spamd refused the check: SPAMD/1.0 76 Bad header line: x",
        ),
        (
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\n\r\nabc",
            "spamd closed the connection before its report ended",
        ),
        (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "spamd's reply has no Spam header"),
        (
            b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n",
            "a Spam header that is not 'True ; SCORE / THRESHOLD': 'maybe'",
        ),
    ],
)
async def test_confused_server_is_an_error(reply: bytes, error: str) -> None:
    """A reply that is not a spamd report is an Error naming what was wrong."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.write(reply)
        await writer.drain()

    server, address = await serve_once(answer)
    async with server:
        result = await Spamd(address, timeout=5.0).check(GTUBE)
    assert result["Error"] == f"spamd at {address}: {error}"


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("", "no spamd is configured ([checks] spamassassin)"),
        ("spamd.example", "the spamd address is not HOST:PORT: 'spamd.example'"),
    ],
)
async def test_no_usable_address_is_an_error(address: str, error: str) -> None:
    """An empty or malformed address gives an Error without any connection."""
    assert (await Spamd(address).check(GTUBE))["Error"] == error


REPORT = """\
Spam detection software, running on the system "mx.example", has identified ...

Content preview:  Buy 1000 now

Content analysis details:   (7.9 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 2.5 URIBL_BLACK            Contains an URL listed in the URIBL blacklist
                            [URIs: spam.example]
1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email
 0.0 TVD_SPACE_RATIO        No description available.

"""


def test_report_table_parsed_with_wrapped_descriptions() -> None:
    """Each table row is a rule; an indented line continues the description above it."""
    rules = [(r["Score"], r["Name"], r["Description"]) for r in parse_rules(REPORT)]
    assert rules == [
        (-0.0, "NO_RELAYS", "Informational: message was not relayed via SMTP"),
        (2.5, "URIBL_BLACK", "Contains an URL listed in the URIBL blacklist [URIs: spam.example]"),
        (1000.0, "GTUBE", "BODY: Generic Test for Unsolicited Bulk Email"),
        (0.0, "TVD_SPACE_RATIO", "No description available."),
    ]


def test_spamd_from_the_checks_section() -> None:
    """[checks] spamassassin and spamassassin_timeout make the client; off by default."""
    spamd = Spamd.from_config(ChecksConfig(spamassassin="127.0.0.1:783", spamassassin_timeout=3.0))
    assert (spamd.address, spamd.timeout) == ("127.0.0.1:783", 3.0)
    assert Spamd.from_config(ChecksConfig()).address == ""
