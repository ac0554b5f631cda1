"""The checks of a stored message, for the API and the UI: each runs when first asked,
once per message, and its answer is kept (relay/store/checks.py) until the message goes.

Asking again reads the kept answer. Requests for the same check of the same message while
it runs share that one run (`CheckRuns`, keyed by message and kind); other messages' checks
never wait for it. A run outlives the request that started it (a closed tab does not
cancel it halfway), and the HTML check's parsing runs in a thread (relay.offload.CHECKS),
never on the event loop. What comes of asking the outside world and may be better later is
not kept: a spam check that could not reach spamd says so in `Error` and runs again next
time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from relay import mime
from relay.checks.html_compat import HtmlCheckResponse, check_html
from relay.checks.spam import SpamCheckResponse, Spamd
from relay.offload import CHECKS
from relay.store import Kind, Store
from web.pages import config_of, store_of
from web.structures import Structures, structures_of

if TYPE_CHECKING:
    from relay.checks.links import LinkCheckResponse

JSON = dict[str, Any]


class NoMessage(LookupError):
    """The message is not (or no longer) there."""


class NoHtml(LookupError):
    """The message has no HTML body to check."""


@dataclass(frozen=True)
class Outcome:
    """A check's answer, what searches ask of it, and whether to keep it."""

    answer: Any
    score: float | None
    flagged: bool
    keep: bool = True


Run = Callable[[], Awaitable[Outcome]]


class CheckRuns:
    """The checks running now, by message and kind, so that requests share a run."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, Kind], asyncio.Task[Any]] = {}

    async def answer(self, store: Store, message_id: str, kind: Kind, run: Run) -> Any:
        """The kept answer of the check `kind` of a message, else the answer of the run
        going on, else that of a new run of `run` (kept when it says so)."""
        key = (message_id, kind)
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._kept_or_run(store, message_id, kind, run), name=f"check-{kind}"
            )
            self._running[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: tuple[str, Kind], task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # seen here, should every request have gone away

    @staticmethod
    async def _kept_or_run(store: Store, message_id: str, kind: Kind, run: Run) -> Any:
        kept = await store.checks.get(message_id, kind)
        if kept is not None:
            return json.loads(kept)
        outcome = await run()
        if outcome.keep:
            stored = await store.checks.keep(
                message_id,
                kind,
                json.dumps(outcome.answer),
                score=outcome.score,
                flagged=outcome.flagged,
                now=time.time(),
            )
            if not stored:
                raise NoMessage(message_id)
        return outcome.answer


def runs_of(request: Request) -> CheckRuns:
    """The app's running checks."""
    runs: CheckRuns = request.app.state.checks
    return runs


async def _raw(store: Store, message_id: str) -> bytes:
    raw = await store.messages.raw(message_id)
    if raw is None:
        raise NoMessage(message_id)
    return raw


async def _view(store: Store, structures: Structures, message_id: str) -> mime.view.MessageView:
    return await structures.view(message_id, await _raw(store, message_id))


async def html_check(request: Request, message_id: str) -> HtmlCheckResponse:
    """The HTML compatibility check of a message; NoHtml without an HTML body."""
    store, structures = store_of(request), structures_of(request)

    async def run() -> Outcome:
        html = (await _view(store, structures, message_id)).html
        if not html:
            raise NoHtml(message_id)
        answer = await CHECKS.run(len(html), check_html, html)
        return Outcome(answer, answer["Total"]["Supported"], flagged=False)

    result: HtmlCheckResponse = await runs_of(request).answer(store, message_id, Kind.HTML, run)
    return result


async def link_check(request: Request, message_id: str, follow: bool) -> LinkCheckResponse:
    """The link check of a message (following redirects or not: two answers)."""
    # Here, not on top: the link checker brings httpx, which the server's start (and a
    # relay whose UI never checks links) does without.
    from relay.checks.links import LinkCheckOptions, check_links, extract_links

    store, structures = store_of(request), structures_of(request)
    options = LinkCheckOptions.from_config(config_of(request).checks)

    async def run() -> Outcome:
        view = await _view(store, structures, message_id)
        html, text = view.html or "", view.text or ""
        urls = await CHECKS.run(len(html) + len(text), extract_links, html, text)
        answer = await check_links(urls, follow=follow, options=options)
        return Outcome(answer, answer["Errors"], flagged=answer["Errors"] > 0)

    kind = Kind.LINKS_FOLLOWED if follow else Kind.LINKS
    result: LinkCheckResponse = await runs_of(request).answer(store, message_id, kind, run)
    return result


async def spam_check(request: Request, message_id: str) -> SpamCheckResponse:
    """SpamAssassin's verdict on a message; kept only when spamd gave one."""
    store = store_of(request)
    spamd = Spamd.from_config(config_of(request).checks)

    async def run() -> Outcome:
        answer = await spamd.check(await _raw(store, message_id))
        return Outcome(answer, answer["Score"], answer["IsSpam"], keep=not answer["Error"])

    result: SpamCheckResponse = await runs_of(request).answer(store, message_id, Kind.SPAM, run)
    return result


def spam_configured(request: Request) -> bool:
    """Whether [checks] names a spamd."""
    return bool(config_of(request).checks.spamassassin)
