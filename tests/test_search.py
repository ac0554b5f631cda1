"""The search box's language (pure parser): terms, quoting, negation, problems."""

from __future__ import annotations

import pytest

from relay.query import Field, Term, parse, parse_size


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", []),
        ("invoice", [Term(Field.TEXT, "invoice")]),
        ("invoice 2024", [Term(Field.TEXT, "invoice"), Term(Field.TEXT, "2024")]),
        ('"order 1234"', [Term(Field.TEXT, "order 1234")]),
        ("from:alice", [Term(Field.FROM, "alice")]),
        ("FROM:Alice", [Term(Field.FROM, "Alice")]),
        ('from:"Alice Smith"', [Term(Field.FROM, "Alice Smith")]),
        ("to:bob@example.com", [Term(Field.TO, "bob@example.com")]),
        ("cc:carol", [Term(Field.TO, "carol")]),
        ('subject:"daily digest"', [Term(Field.SUBJECT, "daily digest")]),
        ("is:unread", [Term(Field.IS, "unread")]),
        ("is:READ", [Term(Field.IS, "read")]),
        ("is:failed", [Term(Field.IS, "failed")]),
        ("is:deferred is:held", [Term(Field.IS, "deferred"), Term(Field.IS, "held")]),
        ("has:attachment", [Term(Field.HAS, "attachment")]),
        ("has:attachments", [Term(Field.HAS, "attachment")]),
        ("listener:submission", [Term(Field.LISTENER, "submission")]),
        ("user:app", [Term(Field.USER, "app")]),
        ("-from:noreply", [Term(Field.FROM, "noreply", negated=True)]),
        ('-"out of office"', [Term(Field.TEXT, "out of office", negated=True)]),
        ("-spam", [Term(Field.TEXT, "spam", negated=True)]),
        ("http://example.com/x", [Term(Field.TEXT, "http://example.com/x")]),
        ("a - b", [Term(Field.TEXT, "a"), Term(Field.TEXT, "b")]),
        ('"unterminated phrase', [Term(Field.TEXT, "unterminated phrase")]),
        ("x x", [Term(Field.TEXT, "x")]),
        ("!spam", [Term(Field.TEXT, "spam", negated=True)]),
        ("message-id:abc@host", [Term(Field.MESSAGE_ID, "abc@host")]),
        ("bcc:audit", [Term(Field.TO, "audit")]),
        ("addressed:bob", [Term(Field.ADDRESSED, "bob")]),
        ("after:2024-05-01", [Term(Field.AFTER, "2024-05-01")]),
        ("larger:10k", [Term(Field.LARGER, "10k")]),
        ("tag:x is:tagged", [Term(Field.TAG, "x"), Term(Field.IS, "tagged")]),
        (
            'from:alice -is:read has:attachment "q3 report" budget',
            [
                Term(Field.FROM, "alice"),
                Term(Field.IS, "read", negated=True),
                Term(Field.HAS, "attachment"),
                Term(Field.TEXT, "q3 report"),
                Term(Field.TEXT, "budget"),
            ],
        ),
    ],
)
def test_terms(text: str, terms: list[Term]) -> None:
    """Each search text parses into exactly these terms, in order."""
    query = parse(text)
    assert list(query.terms) == terms
    assert query.problems == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("is:sleepy", "is:sleepy is not one of"),
        ("has:pony", "has:pony is not one of"),
        ("from:", "from: needs a value"),
        ("after:someday", "after:someday is not a date"),
        ("smaller:huge", "smaller:huge is not a size"),
    ],
)
def test_bad_terms_are_reported_and_ignored(text: str, problem: str) -> None:
    """A known key with a bad or missing value is reported, not searched."""
    query = parse(text)
    assert query.terms == ()
    assert query.problems and query.problems[0].startswith(problem)


def test_query_prints_back_as_search_text() -> None:
    """str(query) is search text that parses to the same query."""
    query = parse('from:"Alice Smith" -is:read invoice')
    assert str(query) == 'from:"Alice Smith" -is:read invoice'
    assert parse(str(query)) == query


@pytest.mark.parametrize(
    ("text", "size"), [("500", 500), ("10k", 10240), ("2M", 2 * 1024**2), ("1.5GB", 1610612736)]
)
def test_sizes(text: str, size: int) -> None:
    """larger:/smaller: sizes are bytes, with k, M and G as powers of 1024."""
    assert parse_size(text) == size
