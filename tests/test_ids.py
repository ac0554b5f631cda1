"""Message IDs: unique, time-ordered and unguessable, also across a refill of the random
pool and in a forked child."""

from __future__ import annotations

import os

from relay import ids


def test_ids_sort_in_order_and_never_repeat_across_pool_refills() -> None:
    """Thousands of IDs in one millisecond (several refills of the pool) are distinct and
    sort in the order they were made."""
    made = [ids.new_id(1_800_000_000.0) for _ in range(3000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(len(i) == 26 for i in made)


def test_ids_of_different_milliseconds_differ_in_their_random_part() -> None:
    """IDs of new milliseconds draw fresh random bits: no two share their last 16 characters."""
    made = [ids.new_id(1_800_000_000.0 + n / 1000) for n in range(1, 600)]
    assert len({i[10:] for i in made}) == len(made)


def test_a_forked_child_draws_its_own_random_bits() -> None:
    """A child forked with random bytes left in the parent's pool does not reuse them."""
    ids.new_id(1_900_000_000.0)  # the pool now holds unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write one ID of a new millisecond, leave at once
        os.write(write, ids.new_id(1_900_000_001.0).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    ours = ids.new_id(1_900_000_001.0)
    assert len(child) == 26
    assert child[10:] != ours[10:]
