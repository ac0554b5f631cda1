"""The UI in real headless Chromium: list, search, a message with its inline image, the
sandbox holding a hostile mail, a new message appearing live, a failed delivery retried
from the queue page against a real upstream, live delivery statuses. Saves screenshots."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import update

from relay.status import Status
from relay.store.schema import recipient
from tests import mail
from tests import upstream as up
from tests.browsing import HAVE_CHROMIUM, needs_chromium
from tests.queue_seed import UPSTREAMS, seed_queue
from tests.queueing import relay_config, upstream_at, wait_for_status
from tests.support import RunningRelay
from tests.test_capture import send
from tests.upstream import Upstream

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

pytestmark = needs_chromium

if HAVE_CHROMIUM:
    from playwright.sync_api import Browser, Page, expect


def rich(subject: str, sender: str, to: str, html: str, text: str) -> bytes:
    """An HTML + text message with an inline logo."""
    cid = make_msgid(domain="example.com")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(text)
    msg.add_alternative(html.replace("CID", cid[1:-1]), subtype="html")
    msg.get_payload()[1].add_related(mail.PNG, "image", "png", cid=cid, filename="logo.png")
    return msg.as_bytes(policy=policy.SMTP)


WELCOME_HTML = """<html>
<body style="font-family:system-ui;background:#f4f5f7;margin:0;padding:24px">
<table width="560" align="center" style="background:#fff;border-radius:10px;padding:28px">
<tr><td><img src="cid:CID" id="logo" width="48" height="48" alt="logo"
 style="background:#2f6fed;border-radius:10px">
<h1 style="font-size:22px">Welcome to Acme, Carol!</h1>
<p>Your account is ready. Confirm your address to start your 14-day trial.</p>
<p><a href="https://acme.example/confirm" style="background:#2f6fed;color:#fff;padding:10px 18px;
 border-radius:6px;text-decoration:none">Confirm my address</a></p>
<p style="color:#888;font-size:12px">Acme Inc. · 1 Infinite Loop</p></td></tr></table>
</body></html>"""


def seed(relay: RunningRelay) -> dict[str, str]:
    """A realistic mailbox: sign-up, invoices, alerts, a digest."""
    ids = {}
    ids["welcome"] = send(
        relay,
        rich("Welcome to Acme — confirm your address", "Acme <hello@acme.example>",
             "carol@example.com", WELCOME_HTML, "Welcome to Acme, Carol!"),
        ["carol@example.com"],
    )  # fmt: skip
    samples = [
        ("Billing <billing@acme.example>", "dave@example.net", "Invoice INV-1042 for March",
         "Your invoice for March is attached. Amount due: $249.00."),
        ("Alerts <alerts@monitor.example>", "ops@example.com",
         "[FIRING] disk usage above 90% on db-2",
         "db-2 /var/lib/postgresql is 91% full."),
        ("GitHub <noreply@github.example>", "dev@example.com", "[relay] Pull request #42 merged",
         "Merged feat/search into main."),
        ("Weekly digest <digest@news.example>", "team@example.com",
         "Your weekly digest: 5 new posts",
         "Here is what happened this week."),
        ("Support <support@acme.example>", "erin@example.org", "Re: Password reset not arriving",
         "Could you check your spam folder?"),
    ]  # fmt: skip
    for sender, to, subject, body in samples:
        raw = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
        ids[subject] = send(relay, raw, [to.split("<")[-1].rstrip(">")])
    return ids


def test_list_search_and_message_with_inline_image(relay: RunningRelay, page: Page) -> None:
    """The list shows mail; a search narrows it; the message's HTML shows its inline image."""
    ids = seed(relay)
    page.goto(relay.web_url + "/")
    expect(page.locator("#rows tr.row")).to_have_count(6)
    page.fill("input[name=q]", "from:billing")
    page.press("input[name=q]", "Enter")
    expect(page.locator("#rows tr.row")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Invoice INV-1042")
    page.fill("input[name=q]", "")
    page.press("input[name=q]", "Enter")
    page.click(f"#m-{ids['welcome']} td.subject a")
    expect(page.locator("h1.subject")).to_contain_text("Welcome to Acme")
    frame = page.frame_locator("iframe.html-body")
    expect(frame.locator("h1")).to_have_text("Welcome to Acme, Carol!")
    logo = frame.locator("#logo")
    expect(logo).to_have_attribute("src", re.compile(r"^/message/.+/part/\d+$"))
    expect(logo).to_have_js_property("naturalWidth", 1)  # the PNG loaded and decoded


HOSTILE = (
    "From: mallory@evil.example\r\nTo: you@example.com\r\nSubject: hostile\r\n"
    "Content-Type: text/html; charset=utf-8\r\n\r\n"
    '<html><head><meta http-equiv="refresh" content="0;url=WEB/?refreshed=1">'
    '<base href="WEB/static/"></head><body>'
    "<script>parent.document.title='pwned'; top.location='WEB/?script=1'; alert('script')</script>"
    "<img src=\"x.gif\" onerror=\"parent.document.body.innerHTML='gone'; alert('onerror')\">"
    "<a id=\"js\" href=\"javascript:alert('link');parent.document.title='pwned'\">click me</a>"
    '<form id="f" action="WEB/?form=1" method="get"><input name="q" value="x">'
    '<button id="go">go</button></form>'
    '<p id="inside">inside the sandbox</p></body></html>\r\n'
)


def test_hostile_mail_changes_nothing_outside_its_sandbox(relay: RunningRelay, page: Page) -> None:
    """Script, onerror, javascript: link, meta refresh, form and base change nothing outside."""
    message_id = send(relay, HOSTILE.replace("WEB", relay.web_url).encode(), ["you@example.com"])
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    url = f"{relay.web_url}/message/{message_id}?tab=html"
    page.goto(url)
    title = page.title()
    cookies = page.context.cookies()
    frame = page.frame_locator("iframe.html-body")
    expect(frame.locator("#inside")).to_have_text("inside the sandbox")
    page.wait_for_load_state("networkidle")
    frame.locator("#js").click()
    frame.locator("#go").click()
    page.wait_for_load_state("networkidle")
    assert page.url == url
    assert page.title() == title and "pwned" not in title
    assert page.locator("h1.subject").inner_text().startswith("hostile")
    assert page.context.cookies() == cookies
    assert len(page.context.pages) == 1
    body_frame = next(f for f in page.frames if f.url.endswith("/body.html"))
    assert body_frame.url == f"{relay.web_url}/message/{message_id}/body.html"
    assert not [u for u in requested if "refreshed=1" in u or "script=1" in u or "form=1" in u]
    assert not [u for u in requested if u.startswith(f"{relay.web_url}/static/x.gif")]


def test_new_message_appears_live(relay: RunningRelay, page: Page) -> None:
    """With the list open, a message sent over SMTP appears without a reload."""
    first = send(relay, mail.plain(), ["bob@example.org"])
    page.goto(relay.web_url + "/")
    expect(page.locator("#rows tr.row")).to_have_count(1)
    expect(page.locator("#live-indicator")).to_be_visible()
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url))
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    expect(page.locator(f"#m-{message_id}")).to_contain_text(mail.CHINESE_SUBJECT)
    expect(page.locator("#rows tr.row").first).to_have_id(f"m-{message_id}")
    expect(page.locator("#total")).to_have_text("2")
    expect(page.locator('[data-count="unread"]')).to_have_text("2")
    relay.call(relay.relay.store.delete_messages([first]))
    expect(page.locator(f"#m-{first}")).to_have_count(0)
    assert navigations == []


def show_statuses(relay: RunningRelay, ids: dict[str, str]) -> None:
    """Give a few seeded messages the statuses relaying would (for the screenshots only)."""
    statuses = {
        "Invoice INV-1042 for March": "delivered",
        "[FIRING] disk usage above 90% on db-2": "failed",
        "Re: Password reset not arriving": "deferred",
        "[relay] Pull request #42 merged": "delivered",
    }

    async def apply() -> None:
        async with relay.relay.store.db.writer.begin() as conn:
            for subject, status in statuses.items():
                await conn.execute(
                    update(recipient)
                    .where(recipient.c.message_id == ids[subject])
                    .values(status=status, route="relay:smarthost")
                )

    relay.call(apply())


def test_screenshots(relay: RunningRelay, browser: Browser, tmp_path: Path) -> None:
    """Screenshots of the list and a message, light and dark; with RELAY_UPDATE_SCREENSHOTS=1
    (`make screenshots`) they replace the ones in docs/screenshots."""
    ids = seed(relay)
    show_statuses(relay, ids)
    shots = SCREENSHOTS if os.environ.get("RELAY_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        context = browser.new_context(
            viewport={"width": 1280, "height": 760}, color_scheme=scheme, device_scale_factor=1
        )
        tab = context.new_page()
        suffix = "" if scheme == "light" else "-dark"
        tab.goto(relay.web_url + "/")
        expect(tab.locator("#live-indicator")).to_be_visible()
        tab.screenshot(path=str(shots / f"list{suffix}.png"))
        tab.goto(f"{relay.web_url}/message/{ids['welcome']}")
        expect(tab.frame_locator("iframe.html-body").locator("h1")).to_be_visible()
        tab.screenshot(path=str(shots / f"message{suffix}.png"))
        context.close()
    assert (shots / "list.png").stat().st_size > 10_000
    assert (shots / "message-dark.png").stat().st_size > 10_000


@pytest.fixture
def relaying(sqlite_url: str) -> Iterator[tuple[RunningRelay, Upstream]]:
    """A relay sending everything to a real scriptable upstream on loopback."""
    with Upstream().start() as upstream:
        config = relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)})
        running = RunningRelay(config).start()
        try:
            yield running, upstream
        finally:
            running.stop()


def recipient_id(relay: RunningRelay, message_id: str, address: str) -> int:
    """The id of one recipient of a stored message."""
    row = relay.message(message_id)
    return next(int(r.id) for r in row.recipients if r.address == address)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_retry_a_failed_delivery_from_the_queue_page(
    relaying: tuple[RunningRelay, Upstream], browser: Browser, javascript: bool
) -> None:
    """A recipient the upstream refused with 550 shows on the queue page with its reply;
    once its address is off the suppression list, Retry (a plain form, with or without
    JavaScript) sends it again, the upstream takes it, and the message shows it delivered."""
    relay, upstream = relaying
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    upstream.script("bob@example.org", up.RCPT_550)
    message_id = send(relay, mail.plain(), ["bob@example.org"])
    store = relay.relay.store
    relay.call(wait_for_status(store, message_id, {"bob@example.org": Status.FAILED}))
    rid = recipient_id(relay, message_id, "bob@example.org")
    page.goto(relay.web_url + "/queue")
    row = page.locator(f"#r-{rid}")
    expect(row).to_contain_text("550 5.1.1")
    expect(row).to_contain_text("No such user here")
    expect(page.locator("#queue-attention")).to_have_text("1")
    expect(page.locator(".groups")).to_contain_text("No such user here")
    # The 5.1.1 put the address on the suppression list; ops take it off before a retry
    # that is meant to reach the upstream (tests/test_queue_live.py shows the retry without).
    assert relay.call(store.suppressions.remove("bob@example.org"))
    row.locator("button[value^='retry:']").click()
    upstream.wait(lambda u: u.delivered_to("bob@example.org") == 1)
    relay.call(wait_for_status(store, message_id, {"bob@example.org": Status.DELIVERED}))
    expect(page).to_have_url(relay.web_url + "/queue")
    expect(page.locator("#queue-rows tr")).to_have_count(0)
    expect(page.locator("#queue-attention")).to_have_text("0")
    page.goto(f"{relay.web_url}/message/{message_id}?tab=deliveries")
    delivery = page.locator(f"#d-{rid}")
    expect(delivery.locator(".status")).to_have_text("delivered")
    expect(delivery.locator("table.attempts tbody tr")).to_have_count(2)
    expect(delivery.locator("table.attempts")).to_contain_text("250")
    context.close()


def test_queue_and_deliveries_update_live(
    relaying: tuple[RunningRelay, Upstream], page: Page
) -> None:
    """With the queue page open a new failure appears without a reload; with the Deliveries
    tab open a retry's outcome replaces "deferred" without a reload."""
    relay, upstream = relaying
    store = relay.relay.store
    upstream.script("carol@example.org", up.RCPT_451)
    upstream.script("dave@example.org", up.RCPT_554)
    first = send(relay, mail.plain(), ["carol@example.org"])
    relay.call(wait_for_status(store, first, {"carol@example.org": Status.DEFERRED}))
    page.goto(relay.web_url + "/queue")
    expect(page.locator("#live-indicator")).to_be_visible()
    expect(page.locator("#queue-rows tr")).to_have_count(1)
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url))
    second = send(relay, mail.plain(), ["dave@example.org"])
    dave = page.locator(f"#r-{recipient_id(relay, second, 'dave@example.org')}")
    expect(dave).to_contain_text("554 5.7.1")
    expect(page.locator("#queue-rows tr")).to_have_count(2)
    expect(page.locator("#queue-attention")).to_have_text("2")
    assert navigations == []

    carol = recipient_id(relay, first, "carol@example.org")
    page.goto(f"{relay.web_url}/message/{first}?tab=deliveries")
    expect(page.locator("#live-indicator")).to_be_visible()
    expect(page.locator(f"#d-{carol} .status")).to_have_text("deferred")
    expect(page.locator(f"#d-{carol} button[value=hold]")).to_be_visible()
    navigations.clear()
    relay.call(store.actions.act("retry", first, time.time()))
    expect(page.locator(f"#d-{carol} .status")).to_have_text("delivered")
    expect(page.locator("#message-status")).to_have_text("delivered")
    expect(page.locator(f"#d-{carol} button")).to_have_count(0)
    assert navigations == []
    assert upstream.delivered_to("carol@example.org") == 1


def test_queue_screenshots(sqlite_url: str, browser: Browser, tmp_path: Path) -> None:
    """Screenshots of the queue page, light and dark, from a realistic queue; with
    RELAY_UPDATE_SCREENSHOTS=1 (`make screenshots`) they replace those in docs/screenshots."""
    relay = RunningRelay(relay_config(sqlite_url, UPSTREAMS, routes=())).start()
    try:
        relay.call(seed_queue(relay.relay.store))
        shots = SCREENSHOTS if os.environ.get("RELAY_UPDATE_SCREENSHOTS") == "1" else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        for scheme in ("light", "dark"):
            context = browser.new_context(
                viewport={"width": 1360, "height": 1000}, color_scheme=scheme, device_scale_factor=1
            )
            tab = context.new_page()
            tab.goto(relay.web_url + "/queue")
            expect(tab.locator("#live-indicator")).to_be_visible()
            expect(tab.locator("#queue-rows tr")).to_have_count(12)
            suffix = "" if scheme == "light" else "-dark"
            tab.screenshot(path=str(shots / f"queue{suffix}.png"))
            context.close()
    finally:
        relay.stop()
    assert (shots / "queue.png").stat().st_size > 10_000
    assert (shots / "queue-dark.png").stat().st_size > 10_000
