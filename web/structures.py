"""The MIME structure of recently read large messages, kept so that their parts are
located once rather than at every download.

A message's bytes never change once stored, so where its parts lie does not either. The
kept trees hold no message bytes (each use binds a tree to the bytes just read from the
store, so that a deleted message is gone at once) and are bounded by the number of parts
they hold, least recently used first out. Scanning, when needed, and decoding a large
part run in the view pool (relay.offload), off the event loop.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from starlette.requests import Request

from relay import mime
from relay.mime.structure import Tree
from relay.offload import PARSE_IN_THREAD, VIEWS

MAX_PARTS = 10_000
"""Parts held in all kept trees together (a part costs a few hundred bytes, and about
2 kB more once its headers are parsed)."""


class Structures:
    """Trees of large messages by message id, least recently used dropped first."""

    def __init__(self, max_parts: int = MAX_PARTS) -> None:
        self.max_parts = max_parts
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self._parts = 0

    async def tree(self, message_id: str, raw: bytes) -> Tree:
        """The tree of message `message_id`, whose bytes are `raw`: kept, or scanned (and
        kept when the message is large)."""
        kept = self._trees.get(message_id)
        if kept is not None and kept.size == len(raw):
            self._trees.move_to_end(message_id)
            return dataclasses.replace(kept, raw=raw)
        tree = await VIEWS.run(len(raw), mime.view.structure, raw)
        if len(raw) > PARSE_IN_THREAD and len(tree.parts) <= self.max_parts:
            self._keep(message_id, tree)
        return tree

    def _keep(self, message_id: str, tree: Tree) -> None:
        old = self._trees.pop(message_id, None)
        self._parts -= len(old.parts) if old else 0
        self._trees[message_id] = dataclasses.replace(tree, raw=b"")
        self._parts += len(tree.parts)
        while self._parts > self.max_parts:
            _, dropped = self._trees.popitem(last=False)
            self._parts -= len(dropped.parts)

    async def view(self, message_id: str, raw: bytes) -> mime.view.MessageView:
        """The view of a message (mime.view.of), off the loop when it is large."""
        tree = await self.tree(message_id, raw)
        return await VIEWS.run(len(raw), mime.view.of, raw, tree)

    async def part(self, message_id: str, raw: bytes, part_id: str) -> mime.view.Found | None:
        """One part of a message and its decoded bytes (mime.view.part_in), the decoding off
        the loop when the part is large."""
        tree = await self.tree(message_id, raw)
        found = tree.find(part_id)
        size = found.end - found.body if found else 0
        return await VIEWS.run(size, mime.view.part_in, tree, part_id)


def structures_of(request: Request) -> Structures:
    """Where the app keeps the structure of large messages it has read."""
    structures: Structures = request.app.state.structures
    return structures


async def view_of(request: Request, message_id: str, raw: bytes) -> mime.view.MessageView:
    """The view of a stored message, read off the event loop when it is large."""
    return await structures_of(request).view(message_id, raw)
