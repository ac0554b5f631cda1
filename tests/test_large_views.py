"""Long bodies on the message page: the Text tab and the HTML frame show their first
web.message.SHOWN characters with a notice, and the notice's link serves the whole part."""

from __future__ import annotations

import re

import httpx

from tests import mime_samples as s
from tests.support import RunningRelay
from tests.test_capture import send
from web.message import SHOWN


def test_long_text_is_cut_on_the_page_and_whole_in_its_download(relay: RunningRelay) -> None:
    """A 3 MB text body: the Text tab holds SHOWN characters of it and links its part,
    which downloads all of it."""
    text = b"".join(b"line %07d of a long text\r\n" % i for i in range(3 * 1024 * 1024 // 27))
    message_id = send(relay, s.message(["Subject: long text"], text), ["me@example.com"])
    with httpx.Client(base_url=relay.web_url, timeout=60) as web:
        page = web.get(f"/message/{message_id}").text
        shown = re.search(r'<pre class="text-body">(.*?)</pre>', page, re.DOTALL)
        assert shown is not None and len(shown.group(1)) <= SHOWN
        link = re.search(r'id="text-truncated">.*?<a href="([^"]+)"', page, re.DOTALL)
        assert link is not None
        assert web.get(link.group(1)).content == text


def test_long_html_is_cut_in_its_frame_and_whole_in_its_download(relay: RunningRelay) -> None:
    """A 3 MB HTML body: the frame's document holds SHOWN characters of it, the HTML tab
    says so and links the part, which downloads all of it."""
    rows = b"".join(b"<p>paragraph %07d of a long page</p>\r\n" % i for i in range(80_000))
    html = b"<html><body>" + rows + b"</body></html>\r\n"
    raw = s.message(["Subject: long html", "Content-Type: text/html; charset=utf-8"], html)
    message_id = send(relay, raw, ["me@example.com"])
    with httpx.Client(base_url=relay.web_url, timeout=60) as web:
        frame = web.get(f"/message/{message_id}/body.html").text
        assert SHOWN <= len(frame) < SHOWN + 1000
        page = web.get(f"/message/{message_id}").text
        link = re.search(r'id="html-truncated">.*?<a href="([^"]+)"', page, re.DOTALL)
        assert link is not None
        assert web.get(link.group(1)).content == html
