"""Message IDs: 26-character, time-ordered, unguessable (ULID layout, Crockford base 32)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_RANDOM_BYTES = 10  # 80 bits
_POOL_IDS = 256
_pool = b""
_pool_at = 0


def _random80() -> int:
    """80 bits from the OS's CSPRNG, read 256 IDs' worth at a time (one getrandom call
    per ID was 3% of ingest's CPU in py-spy's profile); call with `_lock` held."""
    global _pool, _pool_at
    if _pool_at >= len(_pool):
        _pool, _pool_at = os.urandom(_RANDOM_BYTES * _POOL_IDS), 0
    chunk = _pool[_pool_at : _pool_at + _RANDOM_BYTES]
    _pool_at += _RANDOM_BYTES
    return int.from_bytes(chunk, "big")


def _forget_pool() -> None:
    """A forked child draws its own bits, never the parent's left-over ones."""
    global _pool, _pool_at
    _pool, _pool_at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(now: float | None = None) -> str:
    """A new ID that sorts after every ID made before it in this process."""
    global _last_ms, _last_rand
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = _random80()
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand % (1 << 80), 16)
