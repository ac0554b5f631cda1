"""A 30 MB message in real Chromium: its page loads in seconds, not minutes."""

from __future__ import annotations

import smtplib
import time

from tests.browsing import HAVE_CHROMIUM, needs_chromium
from tests.support import RunningRelay, queue_id
from web.message import SHOWN

pytestmark = needs_chromium

if HAVE_CHROMIUM:
    from playwright.sync_api import Page, expect

SIZE = 30 * 1024 * 1024
LOAD_TIMEOUT_MS = 15_000
"""Time the page has to load and draw (it took 89 s before the Text tab was cut)."""


def test_a_30_mb_message_page_loads_in_seconds(
    relay: RunningRelay, page: Page, figures: dict[str, str]
) -> None:
    """The Text tab of a 30 MB plain-text message is drawn within LOAD_TIMEOUT_MS, shows
    SHOWN characters of the text and links the whole part."""
    line = b"All work and no play makes Jack a dull boy; " * 2 + b"\r\n"
    data = b"Subject: thirty megabytes\r\n\r\n" + line * (SIZE // len(line))
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=120) as client:
        client.ehlo("client.example")
        client.mail("big@example.com")
        client.rcpt("me@example.com")
        code, reply = client.data(data)
    assert code == 250, reply
    started = time.monotonic()
    page.goto(f"{relay.web_url}/message/{queue_id(reply)}", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("pre.text-body")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    figures["30 MB message page, load and draw"] = f"{time.monotonic() - started:.1f} s"
    expect(page.locator("#text-truncated a")).to_have_attribute(
        "href", f"/message/{queue_id(reply)}/part/0"
    )
    shown = page.locator("pre.text-body").evaluate("e => e.textContent.length")
    assert 0 < shown <= SHOWN
