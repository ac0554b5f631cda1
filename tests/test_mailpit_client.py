"""Compatibility: a real Mailpit client library drives a running relay unchanged.

The client is the npm package `mailpit-api` (tests/js/package.json pins it; `make test`
and CI install it with `npm ci`). The PyPI package `mailpit-api-client` was not enough:
it has no search and no raw-source call, and it sends its delete request form-encoded,
which Mailpit itself does not read (docs/api.md says more).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import mail
from tests.support import RunningRelay
from tests.test_capture import send

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(
        NODE is None, reason="node is not installed: the npm Mailpit client needs it"
    ),
    pytest.mark.skipif(
        not (JS / "node_modules" / "mailpit-api").is_dir(),
        reason="tests/js/node_modules is missing: run `npm ci --prefix tests/js` (make test does)",
    ),
]


def test_mailpit_api_client_lists_searches_gets_and_deletes(relay: RunningRelay) -> None:
    """mailpit-api: send, list, search, get, headers, raw, render, wait, mark, delete."""
    other = send(relay, mail.plain(), ["bob@example.org"])
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(JS / "mailpit_client.mjs"), relay.web_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=JS,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    sent = seen["sentId"]
    assert seen["list"] == {"total": 2, "count": 2, "ids": [sent, other]}
    assert seen["search"] == {"count": 1, "subjects": ["Welcome Jane"]}
    assert seen["message"]["subject"] == "Welcome Jane"
    assert seen["message"]["from"] == {"Name": "App", "Address": "app@example.com"}
    assert seen["message"]["to"] == [{"Name": "Jane", "Address": "jane@example.com"}]
    assert seen["message"]["text"].strip() == "Hello Jane"
    assert seen["latestId"] == sent and seen["waitedId"] == sent
    assert "Subject" in seen["headers"] and "Received" in seen["headers"]
    assert "Subject: Welcome Jane" in seen["raw"]
    assert "<b>Jane</b>" in seen["html"] and seen["text"].strip() == "Hello Jane"
    assert seen["setRead"] == "ok" and seen["unreadAfter"] == 2
    assert [seen[k] for k in ("deleteSearch", "deleteOne", "deleteAll")] == ["ok"] * 3
    assert seen["totalAfter"] == 0
    assert relay.count() == 0


def test_mailpit_api_client_tags_and_checks(relay: RunningRelay) -> None:
    """mailpit-api: getTags, setTags, renameTag, deleteTag, htmlCheck, linkCheck (both
    ways) and spamAssassinCheck against relay, in the shapes the client expects."""
    assert NODE is not None
    link = "http://127.0.0.1:9/track"  # loopback: refused by the link check's guard
    result = subprocess.run(
        [NODE, str(JS / "mailpit_tags_checks.mjs"), relay.web_url, link],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=JS,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["tagsSent"] == ["Welcome"]
    assert [seen[k] for k in ("setTags", "renameTag", "deleteTag", "removeAll")] == ["ok"] * 4
    assert seen["tagsSet"] == ["alpha", "beta"]
    assert seen["tagsAfter"] == ["Alpha Two"] and seen["messageTags"] == ["Alpha Two"]
    assert seen["searchTag"] == 1 and seen["tagsEnd"] == []
    assert seen["html"]["keys"] == ["Platforms", "Total", "Warnings"]
    assert seen["html"]["total"] == ["Nodes", "Partial", "Supported", "Tests", "Unsupported"]
    assert "css-display-flex" in seen["html"]["slugs"] and seen["html"]["platforms"] > 5
    for links in (seen["links"], seen["linksFollowed"]):
        assert links["Errors"] == 1
        assert [(x["URL"], x["StatusCode"]) for x in links["Links"]] == [(link, 0)]
        assert "loopback" in links["Links"][0]["Status"]
    assert seen["spam"] == {
        "IsSpam": False,
        "Score": 0.0,
        "Error": "no spamd is configured ([checks] spamassassin)",
        "Rules": [],
    }
