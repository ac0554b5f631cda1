"""Tags: their names, and the tags a new message gets on its way in (pure).

A tag name holds letters, digits, spaces, `-`, `_` and `.` (Mailpit's rule), at most
MAX_LENGTH characters; tags are one when they differ only in case (the first spelling is
kept). People naming a tag (API, UI) get `problem(name)` back when it is not a name; tags
found in mail are made into names instead (`clean`), as Mailpit does, since mail is never
refused for a header.

A message's tags at ingest come from (`tags_of`):
- its `X-Tags` header, comma-separated;
- plus addresses, with `[tags] plus_addresses`: `jane+invoice@example.com` in From, To,
  Cc or an envelope recipient gives `invoice` (`a+b+c@x`: `b` and `c`);
- the `[[tag]]` rules: each rule whose `match` (a search, as in the UI) holds for the
  message adds its `tags`, judged in memory (relay.matching), in order, so a rule may
  match `tag:` of the tags found before it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay import query
from relay.matching import Facts, matches

if TYPE_CHECKING:
    from relay.config import TagRule, TagsConfig
    from relay.mime.summary import Summary

MAX_LENGTH = 100
"""The longest tag name, in characters."""
_NAME = re.compile(r"[A-Za-z0-9 ._-]+")
_NOT_NAME = re.compile(r"[^A-Za-z0-9 ._-]+")
ALLOWED = "letters, digits, spaces, '-', '_' and '.'"


def key(name: str) -> str:
    """What makes two tags the same: the name, lower-cased."""
    return name.lower()


def problem(name: str) -> str | None:
    """Why `name` cannot be a tag (None: it can). White space around it does not count."""
    name = " ".join(name.split())
    if not name:
        return "a tag needs at least one character"
    if len(name) > MAX_LENGTH:
        return f"a tag has at most {MAX_LENGTH} characters: {name[:20]!r}… is longer"
    if not _NAME.fullmatch(name):
        return f"the tag {name!r} may hold only {ALLOWED}"
    return None


def named(names: Iterable[str]) -> list[str]:
    """People's tag names, spaces tidied, each once (case-insensitive, first kept), in
    order of their keys; raises ValueError saying what is wrong with any that is no name."""
    wanted = list(names)
    problems = [p for p in map(problem, wanted) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return unique(" ".join(n.split()) for n in wanted)


def clean(text: str) -> str:
    """`text` made a tag name: each run of other characters a space, spaces tidied, cut to
    MAX_LENGTH; may be empty."""
    return " ".join(_NOT_NAME.sub(" ", text).split())[:MAX_LENGTH].strip()


def unique(names: Iterable[str]) -> list[str]:
    """Non-empty names, each once (the first spelling of a key), sorted by key."""
    kept: dict[str, str] = {}
    for name in names:
        if name:
            kept.setdefault(key(name), name)
    return [kept[k] for k in sorted(kept)]


def from_header(value: str) -> list[str]:
    """The tags of an X-Tags header: comma-separated, each cleaned."""
    return [tag for tag in map(clean, value.split(",")) if tag]


def from_plus(addresses: Iterable[str]) -> list[str]:
    """The tags plus addresses carry: `jane+a+b@example.com` gives `a` and `b`."""
    found: list[str] = []
    for address in addresses:
        local, at, _domain = address.rpartition("@")
        if at and "+" in local:
            found += [tag for tag in map(clean, local.split("+")[1:]) if tag]
    return found


def header_addresses(*values: str) -> list[str]:
    """The addresses of address headers' values that may be plus addresses (hold a "+")."""
    plus = [value for value in values if "+" in value]
    return [addr for _name, addr in email.utils.getaddresses(plus) if addr] if plus else []


@dataclass(frozen=True)
class Rule:
    """A `[[tag]]` rule, its search parsed."""

    query: query.Query
    tags: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def compiled(rules: tuple[TagRule, ...]) -> tuple[Rule, ...]:
    """The `[[tag]]` rules with their searches parsed (once per configuration)."""
    return tuple(Rule(query.parse(rule.match), tuple(named(rule.tags))) for rule in rules)


def by_rules(rules: Sequence[Rule], facts: Facts) -> list[str]:
    """The tags the rules give a message that already has `facts.tag_keys`."""
    found: list[str] = []
    keys = set(facts.tag_keys)
    for rule in rules:
        if matches(rule.query, facts if keys == facts.tag_keys else _with(facts, keys)):
            found += rule.tags
            keys |= {key(tag) for tag in rule.tags}
    return found


def _with(facts: Facts, keys: set[str]) -> Facts:
    """`facts` with other tags."""
    return dataclasses.replace(facts, tag_keys=frozenset(keys))


@dataclass(frozen=True)
class Arrival:
    """What ingest knows of a new message beyond its summary."""

    mail_from: str
    recipients: Sequence[tuple[str, str]]
    """Each envelope recipient with its status (captured, queued)."""
    size: int
    listener: str
    auth_user: str | None
    received_at: float
    mailbox: str = "default"
    """The mailbox it lands in (relay.mailboxes.mailbox_for)."""


def wanted(settings: TagsConfig, rules: tuple[TagRule, ...], summary: Summary) -> bool:
    """Whether a new message may get tags at all: an X-Tags header, plus addresses on, or
    rules. Not: ingest skips the rest (the common case costs a few attribute reads)."""
    return bool(summary.tags or settings.plus_addresses or rules)


def tags_of(
    settings: TagsConfig,
    rules: tuple[TagRule, ...],
    summary: Summary,
    arrival: Arrival,
    search_text: Callable[[], str] = lambda: "",
) -> tuple[str, ...]:
    """A new message's tags: X-Tags, plus addresses (when on), then the rules; each once,
    sorted. Nothing to do (no header, no plus addresses, no rules) costs nothing.
    `search_text` makes the message's search text, called at most once, when a rule
    searches free text."""
    found = from_header(summary.tags) if summary.tags else []
    if settings.plus_addresses:
        named_in = header_addresses(summary.from_, summary.to, summary.cc)
        found += from_plus([*named_in, *(rcpt for rcpt, _status in arrival.recipients)])
    if rules:
        facts = Facts(
            subject=summary.subject,
            from_header=summary.from_,
            to_header=summary.to,
            cc_header=summary.cc,
            message_id=summary.message_id,
            mail_from=arrival.mail_from,
            recipients=tuple(rcpt for rcpt, _status in arrival.recipients),
            statuses=tuple(status for _rcpt, status in arrival.recipients),
            size=arrival.size,
            attachments=summary.attachments,
            listener=arrival.listener,
            auth_user=arrival.auth_user,
            mailbox=arrival.mailbox,
            received_at=arrival.received_at,
            search_text=functools.cache(search_text),
            tag_keys=frozenset(map(key, found)),
        )
        found += by_rules(compiled(rules), facts)
    return tuple(unique(found))
