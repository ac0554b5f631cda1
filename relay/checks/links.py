"""Link check: does each http(s) link of a message answer, in Mailpit's link-check shape.

`extract_links(html, text)` gathers the links (`<a href>` and `<img src>` of the HTML, the
URLs of the text part), deduplicated in order of appearance. `check_links(urls, ...)`
requests each one: HEAD, then GET when the server refuses HEAD (403, 405, 501), with a
time limit per link and a cap on requests at once; with `follow` it follows up to 5
redirects, each hop checked again. It never becomes a request forgery tool: every host
passes `relay.checks.guard` first, and the request goes to the address that was checked,
with the link's own host name in the Host header and, for https, in SNI and certificate
verification. A refused, unresolvable, failing or slow link has StatusCode 0 and a Status
saying why; `Errors` counts those and every status of 400 or more.
"""

from __future__ import annotations

import asyncio
import http
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TypedDict
from urllib.parse import urljoin

import httpx

from relay.checks.guard import AddressPolicy, Refused, Resolver, pin, system_resolver
from relay.config import ChecksConfig

HEAD_REFUSED = frozenset({403, 405, 501})
"""Answers to HEAD after which the link is asked again with GET (some servers, and signed
download links, refuse HEAD but serve GET)."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
PORT_END = 65536
SCHEMES = ("http", "https")
USER_AGENT = "relay-link-check/1"
TEXT_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
TRAILING = ".,;:!?'\"*"
"""Punctuation that ends a sentence rather than a URL written in text."""


class LinkStatus(TypedDict):
    """One link's answer: its HTTP status, or 0 with what went wrong."""

    URL: str
    StatusCode: int
    Status: str


class LinkCheckResponse(TypedDict):
    """The whole answer, as Mailpit's link-check gives it."""

    Errors: int
    Links: list[LinkStatus]


@dataclass(frozen=True)
class LinkCheckOptions:
    """How links are checked: time limit, requests at once, and which addresses to reach."""

    timeout: float = 10.0
    concurrency: int = 5
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def from_config(cls, checks: ChecksConfig) -> LinkCheckOptions:
        """The options that the [checks] section sets."""
        return cls(
            timeout=checks.link_check_timeout,
            concurrency=checks.link_check_concurrency,
            policy=AddressPolicy(allow_private=checks.link_check_allow_private),
        )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value.strip())


def _text_urls(text: str) -> list[str]:
    urls = []
    for match in TEXT_URL.finditer(text):
        url = match.group().rstrip(TRAILING)
        while url.endswith(")") and url.count(")") > url.count("("):
            url = url[:-1].rstrip(TRAILING)
        urls.append(url)
    return urls


def extract_links(html: str = "", text: str = "") -> list[str]:
    """The http(s) links of a message's HTML (`a href`, `img src`) and text, each once."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    found = [*parser.urls, *_text_urls(text)]
    return list(dict.fromkeys(u for u in found if u.lower().startswith(("http://", "https://"))))


class _Failed(Exception):
    """A link cannot be checked; the message is its Status."""


def _parsed(url: str, base: httpx.URL | str) -> httpx.URL:
    """`url` (a redirect's Location, relative to `base`) as an http(s) URL with a host."""
    where = f"redirect to {url}: " if base else ""
    try:
        parsed = httpx.URL(urljoin(str(base), url) if base else url)
        host = parsed.host  # decodes an IDNA name: raises ValueError for a bad one
    except (httpx.InvalidURL, ValueError) as exc:
        raise _Failed(f"{where}invalid URL ({exc})") from None
    if parsed.scheme not in SCHEMES or not host:
        raise _Failed(f"{where}not an http or https URL")
    if parsed.port is not None and not 0 < parsed.port < PORT_END:
        raise _Failed(f"{where}invalid URL (port {parsed.port})")
    return parsed


def _status_text(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"


class _Checker:
    """Checks links over one HTTP client, with the options' limits."""

    def __init__(
        self, client: httpx.AsyncClient, options: LinkCheckOptions, resolver: Resolver
    ) -> None:
        self.client = client
        self.options = options
        self.resolver = resolver
        self.slots = asyncio.Semaphore(options.concurrency)

    async def check(self, url: str, follow: bool) -> LinkStatus:
        """One link's status; never raises."""
        async with self.slots:
            try:
                async with asyncio.timeout(self.options.timeout):
                    code = await self._follow(url, follow)
            except TimeoutError:
                timed_out = f"timed out after {self.options.timeout:g} s"
                return LinkStatus(URL=url, StatusCode=0, Status=timed_out)
            except (_Failed, Refused) as exc:
                return LinkStatus(URL=url, StatusCode=0, Status=str(exc))
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
                return LinkStatus(URL=url, StatusCode=0, Status=str(exc) or type(exc).__name__)
        return LinkStatus(URL=url, StatusCode=code, Status=_status_text(code))

    async def _follow(self, url: str, follow: bool) -> int:
        """The status of `url`, or of the end of its redirects when following them."""
        current, hop = _parsed(url, ""), 0
        while True:
            try:
                code, location = await self._request(current)
            except Refused as exc:
                raise Refused(f"redirect to {current} {exc}" if hop else str(exc)) from None
            if not follow or code not in REDIRECTS or location is None:
                return code
            if hop == self.options.max_redirects:
                raise _Failed(f"more than {self.options.max_redirects} redirects")
            current, hop = _parsed(location, current), hop + 1

    async def _request(self, url: httpx.URL) -> tuple[int, str | None]:
        """HEAD (then GET if refused) at the pinned address: the status and any Location."""
        host = url.raw_host.decode("ascii")
        pinned = await pin(host, self.resolver, self.options.policy)
        target = url
        extensions = {}
        headers = {"User-Agent": USER_AGENT}
        if not pinned.literal:
            target = url.copy_with(host=str(pinned.address))
            headers["Host"] = host if url.port is None else f"{host}:{url.port}"
            if url.scheme == "https":
                extensions["sni_hostname"] = host
        try:
            response = await self.client.head(target, headers=headers, extensions=extensions)
            if response.status_code in HEAD_REFUSED:
                request = self.client.build_request(
                    "GET", target, headers=headers, extensions=extensions
                )
                response = await self.client.send(request, stream=True)
                await response.aclose()
        except ValueError as exc:  # httpx reads a redirect's Location even when not following
            raise _Failed(f"redirect to an invalid URL ({exc})") from None
        return response.status_code, response.headers.get("location")


async def check_links(
    urls: Iterable[str],
    *,
    follow: bool = False,
    options: LinkCheckOptions | None = None,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> LinkCheckResponse:
    """Check each link at once (up to `options.concurrency`), in Mailpit's link-check shape.

    `resolver` turns host names into addresses (the system's by default); `verify` is the
    TLS verification of https links (an SSL context for a private CA). Never raises for a
    link: what went wrong is in its Status.
    """
    options = options or LinkCheckOptions()
    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        timeout=options.timeout, limits=limits, trust_env=False, verify=verify
    ) as client:
        checker = _Checker(client, options, resolver)
        links = await asyncio.gather(*(checker.check(url, follow) for url in dict.fromkeys(urls)))
    errors = sum(1 for link in links if link["StatusCode"] == 0 or link["StatusCode"] >= 400)
    return LinkCheckResponse(Errors=errors, Links=list(links))
