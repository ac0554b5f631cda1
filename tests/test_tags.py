"""Tags of new mail: names as Mailpit allows them, the X-Tags header, plus addresses and
the [[tag]] rules, whose searches judged in memory agree with the store's SQL."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

import pytest

from relay import ingest, mime, tagging
from relay.config import Config, RouteConfig, TagRule, TagsConfig
from relay.ingest import Origin
from relay.query import parse
from relay.store import Filter, Store
from tests.support import RunningRelay, make_config
from tests.test_capture import send
from tests.webkit import message


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("invoice", None),
        ("Order 12", None),
        ("v1.2_beta-x", None),
        ("  spaced   out  ", None),
        ("x" * tagging.MAX_LENGTH, None),
        ("", "at least one character"),
        ("   ", "at least one character"),
        ("a/b", "may hold only letters, digits, spaces, '-', '_' and '.'"),
        ("café", "may hold only"),
        ("a,b", "may hold only"),
        ("x" * (tagging.MAX_LENGTH + 1), f"at most {tagging.MAX_LENGTH} characters"),
    ],
)
def test_tag_names_follow_mailpits_rule(name: str, problem: str | None) -> None:
    """Letters, digits, spaces, -, _ and . make a name; anything else is said to be wrong."""
    found = tagging.problem(name)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_names_are_tidied_kept_once_whatever_the_case_and_sorted() -> None:
    """People's names: spaces tidied, one per key (the first spelling), sorted by key."""
    assert tagging.named(["urgent", " Order   12 ", "Urgent", "billing"]) == [
        "billing",
        "Order 12",
        "urgent",
    ]
    with pytest.raises(ValueError, match="'a/b' may hold only"):
        tagging.named(["ok", "a/b"])


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("invoice", ["invoice"]),
        ("invoice, Order 12 ,urgent", ["invoice", "Order 12", "urgent"]),
        ("a/b, ,c", ["a b", "c"]),
        ("   ,  ", []),
        ("naïve", ["na ve"]),
    ],
)
def test_x_tags_header_is_split_on_commas_and_cleaned(header: str, tags: list[str]) -> None:
    """X-Tags: comma-separated; characters a name may not hold become spaces (Mailpit)."""
    assert tagging.from_header(header) == tags


@pytest.mark.parametrize(
    ("addresses", "tags"),
    [
        (["jane+invoice@example.com"], ["invoice"]),
        (["jane+a+b@example.com", "bob@example.org"], ["a", "b"]),
        (["plain@example.com", "no-at-sign+x"], []),
        (["jane+@example.com"], []),
    ],
)
def test_plus_addresses_give_their_tags(addresses: list[str], tags: list[str]) -> None:
    """user+tag@domain gives tag; each further + another tag."""
    assert tagging.from_plus(addresses) == tags


def attached(subject: str, body: str, sender: str, to: str, cc: str = "") -> bytes:
    """A text message with a small PDF attached."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    if cc:
        msg["Cc"] = cc
    msg.set_content(body)
    msg.add_attachment(b"%PDF-1.4 report", "application", "pdf", filename="report.pdf")
    return msg.as_bytes(policy=policy.SMTP)


CORPUS: list[tuple[bytes, list[str], Origin]] = [
    (
        message(
            "Invoice 7",
            "Please pay invoice 7 by Friday.",
            "Billing <billing@shop.example>",
            "bob@example.org",
            "X-Tags: urgent, Billing\r\nMessage-ID: <order-7@shop.example>\r\n",
        ),
        ["bob@example.org"],
        Origin("submission", "127.0.0.1", auth_user="app", may_relay=True),
    ),
    (
        attached(
            "Quarterly report",
            "The quarterly report is attached.",
            "Carol <carol@corp.example>",
            "team@corp.example",
            "Dave <dave@corp.example>",
        ),
        ["team@corp.example", "dave@corp.example", "hidden@corp.example"],
        Origin("smtp", "127.0.0.1", may_relay=True),
    ),
    (
        message("Digest", "Ünïcödé text for the team.", to="team@relay.example"),
        ["team@relay.example"],
        Origin("smtp", "127.0.0.1", may_relay=True),
    ),
    (
        message("Long read", "words " * 500, to="jane+news@example.org"),
        ["jane+news@example.org"],
        Origin("smtp", "127.0.0.1", may_relay=True),
    ),
]
"""Mail covering what searches look at: headers, envelope, attachment, statuses (relayed
to relay.example: queued), listener, user, size, X-Tags."""

AGREEING = [
    "invoice",
    '"quarterly report"',
    "ünïcödé",
    "from:billing",
    "from:sender@example.com",
    "to:bob@example.org",
    "cc:dave",
    "bcc:hidden@",
    "to:relay.example",
    "subject:REPORT",
    "is:unread",
    "is:read",
    "is:captured",
    "is:queued",
    "has:attachment",
    "listener:submission",
    "user:app",
    "message-id:order-7",
    "addressed:carol",
    "addressed:jane+news",
    "after:2020-01-01",
    "before:2020-01-01",
    "larger:2k",
    "smaller:2k",
    "-from:billing",
    "!subject:report",
    "tag:urgent",
    "tag:BILLING",
    "!tag:urgent",
    "is:tagged",
    "is:spam",
    "has:broken-links",
    "html-score:<80",
    "from:carol has:attachment",
    "-has:attachment team",
]
"""Searches whose in-memory verdict at ingest must be the store's verdict afterwards (not
`-is:tagged`: the rule's own tag makes the stored message tagged)."""
TRIVIAL = {
    "is:read": "none",
    "before:2020-01-01": "none",
    "is:spam": "none",
    "has:broken-links": "none",
    "html-score:<80": "none",
    "is:unread": "all",
    "after:2020-01-01": "all",
    "from:sender@example.com": "all",
}
"""Searches that find no new message, or every one; each other one tells them apart."""


async def test_rules_tag_exactly_what_the_stored_search_finds(store: Store) -> None:
    """For each search, the messages a [[tag]] rule with it tags on arrival are exactly the
    messages the store's search finds among them afterwards."""
    route = (RouteConfig(match="*@relay.example", action="relay", upstream="mx"),)
    for number, search in enumerate(AGREEING):
        tag = f"rule{number}"
        config = Config(route=route, tag=(TagRule(search, (tag,)),))
        batch = [
            await ingest.submit(store, config, "sender@example.com", rcpts, raw, origin)
            for raw, rcpts, origin in CORPUS
        ]
        tagged = await matching_ids(store, f"tag:{tag}")
        found = [i for i in await matching_ids(store, search) if i in batch]
        assert tagged == found, f"{search!r}: tagged {tagged}, the store finds {found}"
        expected = {"none": 0, "all": len(batch)}.get(TRIVIAL.get(search, ""))
        if expected is None:
            assert 0 < len(found) < len(batch), f"{search!r} tells nothing apart"
        else:
            assert len(found) == expected, search


async def matching_ids(store: Store, search: str) -> list[str]:
    """The ids of the messages a search finds, newest first."""
    page = await store.messages.page(0, 1000, Filter(query=parse(search)), total=0)
    return [m.id for m in page.messages]


async def test_rules_see_the_tags_found_before_them(store: Store) -> None:
    """Rules run in order: a later rule's search sees X-Tags and earlier rules' tags."""
    rules = (
        TagRule("from:billing", ("shop",)),
        TagRule("tag:shop tag:urgent", ("escalate",)),
        TagRule("tag:escalate", ("paged",)),
    )
    raw, rcpts, origin = CORPUS[0]
    message_id = await ingest.submit(store, Config(tag=rules), "s@example.com", rcpts, raw, origin)
    row = await store.messages.get(message_id)
    assert row is not None and row.tags == ("Billing", "escalate", "paged", "shop", "urgent")


@pytest.mark.parametrize("plus", [True, False])
def test_mail_over_smtp_is_tagged_by_header_plus_address_and_rules(
    sqlite_url: str, plus: bool
) -> None:
    """Over SMTP: X-Tags, plus addresses (From, To, Cc, envelope) when [tags] says so, and
    the [[tag]] rules; each tag once, in order, case-insensitively one."""
    config = make_config(
        sqlite_url,
        tags=TagsConfig(plus_addresses=plus),
        tag=(TagRule("subject:invoice", ("Billing", "money")),),
    )
    raw = message(
        "Your invoice",
        "hello",
        "Shop <shop+Orders@shop.example>",
        "Jane <jane+inbox@example.org>",
        "Cc: ops+audit@example.org\r\nX-Tags: billing, Urgent\r\n",
    )
    relay = RunningRelay(config).start()
    try:
        message_id = send(relay, raw, ["jane+inbox@example.org", "ceo+bcc-copy@example.org"])
        tags = relay.message(message_id).tags
    finally:
        relay.stop()
    if plus:
        assert tags == ("audit", "bcc-copy", "billing", "inbox", "money", "Orders", "Urgent")
    else:
        assert tags == ("billing", "money", "Urgent")


async def test_no_tags_without_header_plus_or_rules() -> None:
    """Nothing to tag by costs nothing and gives no tags."""
    raw, rcpts, _origin = CORPUS[1]
    summary = mime.summary.summarize(raw)
    arrival = tagging.Arrival("s@example.com", [(r, "captured") for r in rcpts], 1, "smtp", None, 0)

    def never() -> str:
        raise AssertionError("the search text was made")

    assert tagging.tags_of(TagsConfig(), (), summary, arrival, never) == ()
    text_rule = (TagRule("subject:report", ("r",)),)
    assert tagging.tags_of(TagsConfig(), text_rule, summary, arrival, never) == ("r",)


def test_rules_are_parsed_once_per_configuration() -> None:
    """The rules' searches are parsed once, not per message."""
    rules = (TagRule("from:x", ("a",)),)
    again = tuple([TagRule("from:x", ("a",))])
    assert again is not rules and tagging.compiled(rules) is tagging.compiled(again)
