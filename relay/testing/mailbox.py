"""A mailbox for one test: addresses at a domain no other test uses, the mail sent to
them, and chaos rules that fail only them.

Tests that run at the same time (pytest-xdist, or several suites on one relay) never see
each other's mail: a mailbox looks only at messages addressed to its own domain.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

from relay.testing.client import Client
from relay.testing.message import Message

DOMAIN_SUFFIX = ".test"
"""The top-level domain of every mailbox (RFC 2606: never a real one)."""
_BEFORE_ANY_ADDRESS = ("connect", "helo", "auth")
_SENDER_STAGES = ("mail",)


def _addresses(summary: dict[str, Any]) -> list[str]:
    """The To, Cc and Bcc (envelope recipients not in the headers) of a summary, lower-cased."""
    boxes = [box for key in ("To", "Cc", "Bcc") for box in summary.get(key) or []]
    return [str(box.get("Address", "")).lower() for box in boxes]


class ChaosRule:
    """A chaos rule a mailbox added; `hits` and `matched` are read from relay when asked,
    and kept as they were when the rule is removed."""

    def __init__(self, client: Client, rule: dict[str, Any]) -> None:
        self._client = client
        self.id = int(rule["id"])
        self.settings = rule
        self._final: dict[str, Any] | None = None

    def _now(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        for rule in self._client.rules():
            if rule["id"] == self.id:
                return rule
        return self.settings

    def remove(self) -> None:
        """Remove the rule from relay, keeping its last counters."""
        if self._final is None:
            self._final = self._now()
            self._client.delete_rule(self.id)

    @property
    def hits(self) -> int:
        """How many times the rule fired so far."""
        return int(self._now()["hits"])

    @property
    def matched(self) -> int:
        """How many times its match held so far (fired or not)."""
        return int(self._now()["matched"])


class Mailbox:
    """Addresses unique to one test (`address("alice")` → alice@<unique>.test) and the
    messages sent to them."""

    def __init__(self, client: Client, name: str | None = None) -> None:
        self.client = client
        self.domain = (name or "t" + secrets.token_hex(8)) + DOMAIN_SUFFIX
        self._rules: list[ChaosRule] = []

    def address(self, local: str = "user") -> str:
        """An address of this mailbox."""
        return f"{local}@{self.domain}"

    @property
    def query(self) -> str:
        """The search that finds this mailbox's mail (To, Cc or envelope recipient)."""
        return f'to:"@{self.domain}"'

    def _ours(self, summary: dict[str, Any]) -> bool:
        """Whether a message matched by `query` is really addressed to this domain (and not
        to one that merely contains it)."""
        return any(a.endswith("@" + self.domain) for a in _addresses(summary))

    def messages(self, subject: str | None = None, to: str | None = None) -> list[Message]:
        """The messages to this mailbox, oldest first (those with `subject` in the subject,
        and sent to `to`, when given)."""
        return self._found(self.client.search(self._search(subject, to)), subject, to)

    def _found(
        self, summaries: list[dict[str, Any]], subject: str | None, to: str | None
    ) -> list[Message]:
        return [Message(s, self.client) for s in summaries if self._fits(s, subject, to)]

    def _search(self, subject: str | None, to: str | None) -> str:
        terms = [f'to:"{to}"' if to is not None and '"' not in to else self.query]
        if subject and '"' not in subject:
            terms.append(f'subject:"{subject}"')
        return " ".join(terms)

    def _fits(self, summary: dict[str, Any], subject: str | None, to: str | None) -> bool:
        if not self._ours(summary):
            return False
        if subject is not None and subject.lower() not in str(summary.get("Subject", "")).lower():
            return False
        if to is None:
            return True
        return to.lower() in _addresses(summary)

    def wait_for(
        self,
        subject: str | None = None,
        to: str | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Message]:
        """The first `count` messages to this mailbox (with `subject` in the subject, sent
        to `to`, when given), once they are there; AssertionError after `timeout` seconds.
        relay's wait API (GET /api/v1/wait) wakes this up when a message is stored: there
        is no polling."""
        deadline = time.monotonic() + timeout
        query = self._search(subject, to)
        while True:
            listed = self.client.search(query)
            found = self._found(listed, subject, to)
            if len(found) >= count:
                return found[:count]
            left = deadline - time.monotonic()
            newest = max((str(s["ID"]) for s in listed), default=None)  # seen, fit or not
            if left <= 0 or self.client.wait(query, newest, left) is None:
                what = f"{count} message{'s' if count != 1 else ''} to {to or '@' + self.domain}"
                if subject is not None:
                    what += f" with subject {subject!r}"
                raise AssertionError(f"{what}: {len(found)} within {timeout:g} s")

    def assert_no_message(self, within: float = 1.0) -> None:
        """Fail if a message to this mailbox is there, or arrives within `within` seconds."""
        found = self.messages()
        if found:
            raise AssertionError(f"expected no message to @{self.domain}, found {found}")
        arrived = self.client.wait(self.query, None, within)
        if arrived is not None:
            raise AssertionError(
                f"expected no message to @{self.domain} within {within:g} s, got"
                f" {arrived.get('Subject')!r} ({arrived.get('ID')})"
            )

    @contextlib.contextmanager
    def chaos(self, stage: str = "rcpt", code: int = 451, **rule: Any) -> Iterator[ChaosRule]:
        """A chaos rule for this mailbox alone while the `with` block runs: at `stage`
        (mail: for senders of this mailbox; rcpt, data, data-end, or leg="delivery": for
        mail to it), answering `code`, with any other key of [[chaos.rule]] (first=1,
        probability=50, seed=7, action="disconnect", ...). Removed at exit."""
        delivery = rule.get("leg") == "delivery"
        if not delivery and stage in _BEFORE_ANY_ADDRESS:
            raise ValueError(
                f"stage {stage!r} comes before any address, so a rule there would fail"
                " every test's mail: add it with relay_server.api.add_rule() instead"
            )
        mine = {"sender" if stage in _SENDER_STAGES else "recipient": f"*@{self.domain}"}
        settings = {**rule, "code": code, "match": {**rule.get("match", {}), **mine}}
        if not delivery:
            settings["stage"] = stage
        added = ChaosRule(self.client, self.client.add_rule(settings))
        self._rules.append(added)
        try:
            yield added
        finally:
            added.remove()
            self._rules.remove(added)

    def close(self) -> None:
        """Remove the chaos rules this mailbox still has (a test that stopped midway)."""
        for rule in self._rules:
            rule.remove()
        self._rules.clear()
