"""[tags] and [[tag]]: the tags new mail gets on its way in (relay/tagging.py applies them)."""

from __future__ import annotations

from dataclasses import dataclass

from relay import query, tagging
from relay.config.settings import setting


def check_search(value: str) -> str | None:
    """A check: a search the UI could run (no term it cannot read)."""
    if not value.strip():
        return "a search, as typed in the UI (such as from:shop subject:invoice)"
    parsed = query.parse(value)
    return f"a search the UI can read ({'; '.join(parsed.problems)})" if parsed.problems else None


def check_tags(value: tuple[str, ...]) -> str | None:
    """A check: a non-empty list of tag names."""
    if not value:
        return "a list of at least one tag"
    problems = [p for p in map(tagging.problem, value) if p]
    return f"tag names ({'; '.join(problems)})" if problems else None


@dataclass(frozen=True)
class TagsConfig:
    """[tags]: where new mail's tags come from besides its X-Tags header and the rules."""

    plus_addresses: bool = setting(
        False,
        "Tag mail by plus addresses: jane+invoice@example.com in From, To, Cc or an"
        " envelope recipient tags it 'invoice'.",
    )


@dataclass(frozen=True)
class TagRule:
    """[[tag]]: new mail that a search matches gets these tags (every matching rule adds)."""

    match: str = setting(
        "",
        "A search as typed in the UI (from:shop subject:invoice, has:attachment, ...);"
        " mail it matches on arrival gets the tags.",
        check_search,
    )
    tags: tuple[str, ...] = setting(
        (),
        "The tags to add: letters, digits, spaces, '-', '_' and '.'.",
        check_tags,
    )
