"""DKIM signatures (dkimpy) on relayed mail, made just before it is sent.

A message whose From address is at a domain with a `[dkim."DOMAIN"]` key is sent with a
DKIM-Signature header in front (rsa-sha256, relaxed/relaxed, dkimpy's usual header set,
From signed twice so that none can be added); the stored message stays as it was
received. The signature does not depend on the recipients, so one serves every group and
every transaction of a message: signatures are kept per message ID for a while (and a
second delivery of the same message waits for the first one's signature rather than
making its own). Signing is CPU work (an RSA operation, and hashing the body), so it
runs in a small pool of threads of its own (relay.offload), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import dkim

from relay import address
from relay.config.dkim import DkimConfig
from relay.offload import Offload

log = logging.getLogger(__name__)

KEPT = 1000
"""Signatures kept for the messages signed last (a few hundred bytes each)."""
CANONICALIZATION = (b"relaxed", b"relaxed")
ALGORITHM = b"rsa-sha256"
SIGNING = Offload("relay-dkim", in_thread_above=-1)
"""Signing always leaves the event loop: its RSA operation alone takes milliseconds."""


def from_domain(raw: bytes) -> str | None:
    """The domain of the first address in the message's From header (lower case, no
    trailing dot), or None when it has none."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 2]
    value = BytesHeaderParser().parsebytes(head).get("From")
    if value is None:
        return None
    found = [addr for _, addr in getaddresses([str(value)]) if "@" in addr]
    return address.domain_of(found[0]) if found else None


def _sign(raw: bytes, domain: str, key: DkimConfig) -> bytes:
    """The DKIM-Signature header line (CRLF-terminated) of `raw` for `domain`."""
    header: bytes = dkim.sign(
        raw,
        key.selector.encode(),
        domain.encode(),
        key.key,
        canonicalize=CANONICALIZATION,
        signature_algorithm=ALGORITHM,
    )
    return header


class Signer:
    """Signs relayed mail with the configured keys, once per message."""

    def __init__(self, keys: Mapping[str, DkimConfig]) -> None:
        self.keys = keys
        self.signed = 0  # signatures made, for tests and logs
        self._kept: OrderedDict[str, asyncio.Future[bytes]] = OrderedDict()

    async def sign(self, message_id: str, raw: bytes) -> bytes:
        """`raw` as it is sent: with a DKIM-Signature header in front when its From
        domain has a key, else unchanged. A message that cannot be signed goes unsigned
        (logged): refusing it would keep mail from being delivered over a header."""
        if not self.keys:
            return raw
        while (kept := self._kept.get(message_id)) is not None:
            try:
                return await asyncio.shield(kept) + raw
            except asyncio.CancelledError:
                if not kept.cancelled():  # this delivery is cancelled, not the signing
                    raise
        kept = asyncio.get_running_loop().create_future()
        self._kept[message_id] = kept
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        try:
            header = await self._header(message_id, raw)
        except BaseException:  # cancelled: whoever waits for it signs it itself
            self._kept.pop(message_id, None)
            kept.cancel()
            raise
        kept.set_result(header)
        return header + raw

    async def _header(self, message_id: str, raw: bytes) -> bytes:
        domain = from_domain(raw)
        key = self.keys.get(domain) if domain is not None else None
        if domain is None or key is None:
            return b""
        try:
            header = await SIGNING.run(len(raw), _sign, raw, domain, key)
        except Exception:
            log.exception("%s: could not sign it for %s; sent unsigned", message_id, domain)
            return b""
        self.signed += 1
        return header
