"""Logins (SMTP AUTH, POP3 USER/PASS and AUTH): a user name and password checked against
[auth.users], guessers slowed down per client address.

One `Authenticator` serves every listener, SMTP and POP3 alike, so a guesser's failures
count together whichever port it tries. The scrypt check runs in a worker thread, and the
pause after a failure is an `asyncio.sleep`, so neither holds up other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from relay import passwords
from relay.config import AuthConfig

log = logging.getLogger(__name__)

# Checked when the user is unknown, so that a wrong name costs as long as a wrong password.
_UNKNOWN_USER = "$scrypt$ln=14,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43


class Throttle:
    """Counts failed logins per client address and says how long to pause.

    The first failure from an address waits `base` seconds, each further one twice as
    long, up to `cap`. An address is forgotten after a success or `forget_after` quiet
    seconds; at most `max_entries` addresses are remembered (the oldest are dropped).
    """

    def __init__(
        self,
        base: float,
        cap: float,
        forget_after: float = 900.0,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.cap = cap
        self.forget_after = forget_after
        self.max_entries = max_entries
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failures(self, address: str) -> int:
        """Recent failures from `address`."""
        count, last = self._failures.get(address, (0, 0.0))
        if count and self.clock() - last > self.forget_after:
            return 0
        return count

    def failed(self, address: str) -> float:
        """Record a failure from `address`; return the seconds to wait before answering."""
        count = self.failures(address) + 1
        self._failures.pop(address, None)
        self._failures[address] = (count, self.clock())
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)
        return min(self.cap, self.base * 2.0 ** min(count - 1, 32))

    def succeeded(self, address: str) -> None:
        """Forget the failures of `address`."""
        self._failures.pop(address, None)


class Authenticator:
    """The users of [auth.users] and the throttle shared by every listener (SMTP, POP3)."""

    def __init__(self, config: AuthConfig) -> None:
        self.users = dict(config.users)
        self.throttle = Throttle(config.failure_delay, config.max_failure_delay)

    async def check(
        self, login: bytes, password: bytes, client: str, what: str = "AUTH"
    ) -> str | None:
        """The user name when the password is right; else None, after the throttle's pause."""
        name = login.decode("utf-8", errors="replace")
        hashed = self.users.get(name)
        good = await asyncio.to_thread(passwords.verify, password, hashed or _UNKNOWN_USER)
        if good and hashed is not None:
            self.throttle.succeeded(client)
            log.info("%s as %r from %s", what, name, client)
            return name
        delay = self.throttle.failed(client)
        log.warning(
            "%s failed for %r from %s (%d recent failures; answering in %.1fs)",
            what,
            name,
            client,
            self.throttle.failures(client),
            delay,
        )
        await asyncio.sleep(delay)
        return None
