"""Tags and the check tabs in real headless Chromium: tag chips in the list and the sidebar
(a filter), the tag editor on a message; the HTML check tab with its score, features and
platform filter; the Link check tab against a real loopback server; the Spam check tab
with a real spamd (and without one)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import ChecksConfig
from tests.browsing import HAVE_CHROMIUM, needs_chromium
from tests.link_target import Target, serve
from tests.spamd import SPAMD, RunningSpamd
from tests.support import RunningRelay, make_config
from tests.test_api_checks import NEWSLETTER, html_mail
from tests.test_capture import send
from tests.test_checks_spam import GTUBE
from tests.webkit import message

pytestmark = needs_chromium

if HAVE_CHROMIUM:
    from playwright.sync_api import Page, expect


@contextlib.contextmanager
def running(config: Any) -> Iterator[RunningRelay]:
    """A relay with `config`, stopped after the block."""
    relay = RunningRelay(config).start()
    try:
        yield relay
    finally:
        relay.stop()


@contextlib.contextmanager
def link_target(relay: RunningRelay) -> Iterator[Target]:
    """The loopback link target of tests/link_target.py, on the relay's loop."""
    context = serve("127.0.0.1")
    target = relay.call(context.__aenter__())
    try:
        yield target
    finally:
        relay.call(context.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSpamd | None]:
    """A real spamd for this module (None when it is not installed)."""
    if SPAMD is None:
        yield None
        return
    directory = tmp_path_factory.mktemp("spamd")
    directory.chmod(0o755)
    with RunningSpamd(directory) as started:
        yield started


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, spamd: RunningSpamd | None
) -> Iterator[RunningRelay]:
    """A relay whose link check may reach loopback, with the real spamd when there is one."""
    database = Path(tmp_path_factory.mktemp("relay")) / "relay.db"
    checks = ChecksConfig(
        spamassassin=spamd.address if spamd else "",
        spamassassin_timeout=60.0,
        link_check_allow_private=True,
        link_check_timeout=5.0,
    )
    with running(make_config(f"sqlite+aiosqlite:///{database}", checks=checks)) as started:
        yield started


def test_tags_show_filter_and_are_edited(relay: RunningRelay, page: Page) -> None:
    """An X-Tags tag shows as a chip in the list and in the sidebar, which filters by it;
    on the message, tags are added (comma-separated) and removed; a bad name is refused
    with a page that says why."""
    tagged = send(relay, message("Tagged one", extra="X-Tags: Welcome\r\n"), ["a@example.com"])
    send(relay, message("Untagged one"), ["a@example.com"])
    page.goto(relay.web_url + "/")
    expect(page.locator(f"#m-{tagged} a.tag")).to_have_text("Welcome")
    page.locator("#tag-filters a[data-tag=Welcome]").click()
    expect(page).to_have_url(re.compile(r"q=tag%3AWelcome"))
    expect(page.locator("#rows tr.row")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Tagged one")
    page.click(f"#m-{tagged} td.subject > a")
    editor = page.locator("#tags")
    expect(editor.locator(".tag a")).to_have_text(["Welcome"])
    page.fill("#tags input[name=add]", "vip, follow up")
    page.click("#add-tags")
    expect(editor.locator(".tag a")).to_have_text(["follow up", "vip", "Welcome"])
    page.click("#tags .tag[data-tag=Welcome] button.untag")
    expect(editor.locator(".tag a")).to_have_text(["follow up", "vip"])
    page.goto(relay.web_url + "/")
    expect(page.locator("#tag-filters")).to_contain_text("follow up")
    expect(page.locator("#tag-filters a[data-tag=Welcome]")).to_have_count(0)
    page.goto(f"{relay.web_url}/message/{tagged}")
    page.fill("#tags input[name=add]", "a/b")
    page.click("#add-tags")
    expect(page.locator("body")).to_contain_text("may hold only letters, digits")


def test_html_check_tab_scores_and_filters_by_platform(relay: RunningRelay, page: Page) -> None:
    """The HTML check tab: the overall score, each feature with the clients where it fails,
    and a platform filter that keeps only that platform's clients."""
    message_id = send(relay, html_mail(NEWSLETTER), ["bob@example.org"])
    page.goto(f"{relay.web_url}/message/{message_id}")
    page.get_by_role("link", name="HTML check").click()
    expect(page.locator("#html-score")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    flex = page.locator(".feature[data-slug=css-display-flex]")
    expect(flex).to_contain_text("Gmail")
    expect(flex).to_contain_text("Outlook Windows")
    page.locator("a[data-platform=windows]").click()
    expect(page).to_have_url(re.compile(r"platform=windows"))
    expect(page.locator("a[data-platform=windows]")).to_have_attribute("aria-current", "page")
    expect(flex).to_contain_text("Outlook Windows")
    expect(flex).not_to_contain_text("Gmail")


def test_link_check_tab_shows_each_status(relay: RunningRelay, page: Page) -> None:
    """The Link check tab: each link with its status from a real server, the broken count,
    and a run that follows redirects."""
    with link_target(relay) as target:
        ok, gone = target.url("/ok"), target.url("/missing")
        hop = target.url(f"/to?url={ok}")
        html = f'<a href="{ok}">ok</a> <a href="{gone}">gone</a> <a href="{hop}">hop</a>'
        message_id = send(relay, html_mail(html), ["bob@example.org"])
        page.goto(f"{relay.web_url}/message/{message_id}")
        page.get_by_role("link", name="Link check").click()
        expect(page.locator("#link-errors")).to_have_text("1")
        expect(page.locator(f"tr[data-url='{ok}'] td.code")).to_contain_text("200 OK")
        expect(page.locator(f"tr[data-url='{gone}'] td.code")).to_contain_text("404 Not Found")
        expect(page.locator(f"tr[data-url='{hop}'] td.code")).to_contain_text("302 Found")
        page.click("#follow-redirects")
        expect(page.locator(f"tr[data-url='{hop}'] td.code")).to_contain_text("200 OK")


def test_spam_check_tab_shows_the_verdict(
    relay: RunningRelay, spamd: RunningSpamd | None, page: Page
) -> None:
    """The Spam check tab: GTUBE is spam, with its score and the GTUBE rule."""
    if spamd is None:
        pytest.skip("spamd is not installed (Debian: apt-get install spamassassin spamd)")
    message_id = send(relay, GTUBE, ["bob@example.org"])
    page.goto(f"{relay.web_url}/message/{message_id}")
    page.get_by_role("link", name="Spam check").click()
    expect(page.locator("#spam-verdict")).to_contain_text("spam")
    expect(page.locator("#spam-score")).to_have_text(re.compile(r"^1\d{3}"))
    expect(page.locator("table.rules")).to_contain_text("GTUBE")


def test_spam_check_tab_says_when_it_is_off(tmp_path: Path, page: Page) -> None:
    """Without [checks] spamassassin, the Spam check tab says how to turn it on."""
    with running(make_config(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")) as relay:
        message_id = send(relay, message("hello"), ["bob@example.org"])
        page.goto(f"{relay.web_url}/message/{message_id}?tab=spam-check")
        expect(page.locator("#spam-off")).to_contain_text('spamassassin = "HOST:PORT"')
