"""The UI's columns in real headless Chromium: what a cell holds fits it, nothing is cut
off (the queue's status pills and next tries, the list's received times and dates)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.browsing import HAVE_CHROMIUM, needs_chromium
from tests.queue_seed import UPSTREAMS, seed_queue
from tests.queueing import relay_config
from tests.support import RunningRelay
from tests.webkit import add, message

pytestmark = needs_chromium

if HAVE_CHROMIUM:
    from playwright.sync_api import Browser, Page, expect

CUT_OFF = """(cells) => cells.flatMap((cell) => {
  const edge = cell.getBoundingClientRect().right;
  return [cell, ...cell.querySelectorAll("*")]
    .filter((e) => e.scrollWidth > e.clientWidth || e.getBoundingClientRect().right > edge + 0.5)
    .map((e) => `${e.className || e.tagName}: ${e.textContent.trim()}`);
})"""
"""The elements of the cells given (and the cells) whose content is wider than they are,
or that reach past their cell's edge."""


def cut_off(tab: Page, cells: str) -> list[str]:
    """What is cut off in the cells `cells` selects: empty when everything fits."""
    found: list[str] = tab.locator(cells).evaluate_all(CUT_OFF)
    return found


@pytest.fixture
def queued(sqlite_url: str) -> Iterator[RunningRelay]:
    """A relay whose queue holds deferred, failed and held recipients (tests/queue_seed.py)."""
    relay = RunningRelay(relay_config(sqlite_url, UPSTREAMS, routes=())).start()
    try:
        relay.call(seed_queue(relay.relay.store))
        yield relay
    finally:
        relay.stop()


@pytest.mark.parametrize("width", [1400, 1024])
def test_queue_status_and_next_try_fit(queued: RunningRelay, browser: Browser, width: int) -> None:
    """On the queue page every status pill ("deferred") and every "next in …" fits its
    column whole, at 1,400 and 1,024 px wide."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.goto(queued.web_url + "/queue")
    expect(tab.locator("#queue-rows tr")).to_have_count(12)
    expect(tab.locator("#queue-rows .status-deferred")).to_have_count(7)
    expect(tab.locator("#queue-rows td.when", has_text=re.compile(r"next in \d"))).to_have_count(7)
    assert cut_off(tab, "#queue-rows td.state, #queue-rows td.when") == []
    context.close()


TIME_ONLY = re.compile(r"\d\d:\d\d:\d\d( [AP]M)?")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_received_shows_the_date_unless_today(
    relay: RunningRelay, browser: Browser, javascript: bool
) -> None:
    """The list's Received column shows the time of today's mail and the date of older
    mail, whole (not cut off), as the browser formats it and as the server does."""
    store = relay.relay.store
    received = time.time() - 3 * 86400
    older = relay.call(add(store, message("Three days old"), received_at=received))
    today = relay.call(add(store, message("Just now")))
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="en-US", java_script_enabled=javascript
    )
    tab = context.new_page()
    tab.goto(relay.web_url + "/")
    expect(tab.locator("#rows tr.row")).to_have_count(2)
    assert TIME_ONLY.fullmatch(tab.locator(f"#m-{today} td.when").inner_text())
    day = time.localtime(received)
    date = rf"\b{time.strftime('%b', day)} 0?{day.tm_mday}\b|{time.strftime('%Y-%m-%d', day)}"
    assert re.search(date, tab.locator(f"#m-{older} td.when").inner_text())
    assert cut_off(tab, "#rows td.when") == []
    context.close()
