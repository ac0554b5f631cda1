"""What compressing raw bytes at rest costs per zlib level (relay/store/rawzip.py).

    .venv/bin/python -m bench.zlib_levels

For the seed's 5 KB messages (bench/seed.py, what bench/scale.py stores) and a 1 MB mail
with an attachment (bench.seed.large_message): the share of the bytes kept, and the
microseconds to compress and decompress one message (best of several passes).
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable

from bench.seed import _message_rows, large_message
from relay.store.rawzip import unpack

LEVELS = (1, 3, 6, 9)


def best(fn: Callable[[], object], passes: int = 7) -> float:
    """The shortest of `passes` runs of `fn`, in seconds."""
    shortest = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        fn()
        shortest = min(shortest, time.perf_counter() - started)
    return shortest


def _compress_all(raws: list[bytes], level: int) -> list[bytes]:
    return [zlib.compress(raw, level) for raw in raws]


def _decompress_all(packed: list[bytes]) -> list[bytes]:
    return [zlib.decompress(data) for data in packed]


def main() -> None:
    """Print one line per level."""
    rows = _message_rows(2000, 1e9, 5120)["raw"]  # stored as ingest stores them: packed
    raws = [unpack(row["data"], row["encoding"]) for row in rows]
    big = large_message(1024 * 1024)
    total = sum(map(len, raws))
    print(f"{len(raws)} seed messages of {total / len(raws):,.0f} bytes; a mail of {len(big):,}")
    for level in LEVELS:
        packed = [zlib.compress(r, level) for r in raws]
        zipped = best(functools.partial(_compress_all, raws, level)) / len(raws)
        unzipped = best(functools.partial(_decompress_all, packed)) / len(raws)
        big_packed = zlib.compress(big, level)
        big_zip = best(functools.partial(zlib.compress, big, level), 3)
        big_unzip = best(functools.partial(zlib.decompress, big_packed), 3)
        print(
            f"level {level}: 5 KB kept {sum(map(len, packed)) / total:.1%},"
            f" {zipped * 1e6:.0f} µs to compress, {unzipped * 1e6:.0f} µs to decompress;"
            f" 1 MB kept {len(big_packed) / len(big):.1%}, {big_zip * 1e3:.1f} ms,"
            f" {big_unzip * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
