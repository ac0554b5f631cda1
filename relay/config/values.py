"""Checks of single values that the settings of several sections share (each returns None
when the value is good, else what was expected), and HOST:PORT."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from relay import passwords
from relay.config.dburl import ACCEPTED, database_url
from relay.errors import ConfigError


def split_hostport(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (or "[v6]:PORT") into host and port; raises ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return host, port


def check_hostport(value: str) -> str | None:
    """A check: HOST:PORT with a port from 0 to 65535."""
    try:
        split_hostport(value)
    except ValueError:
        return "HOST:PORT with a port from 0 to 65535"
    return None


def positive(value: float) -> str | None:
    """A check: a number greater than 0."""
    return None if value > 0 else "a number greater than 0"


def non_negative(value: float) -> str | None:
    """A check: a number of 0 or more."""
    return None if value >= 0 else "a number of 0 or more"


def check_url(value: str) -> str | None:
    """A check: a database URL of a form `database_url` accepts."""
    try:
        database_url(value)
    except ValueError:
        return ACCEPTED
    return None


def check_networks(value: tuple[str, ...]) -> str | None:
    """A check: a list of IP networks."""
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f'a list of networks such as "127.0.0.0/8" (bad: {item!r})'
    return None


class Bound:
    """The host and port of a section's `address` ("HOST:PORT", checked at load)."""

    address: str

    @property
    def host(self) -> str:
        """The host part of `address`."""
        return split_hostport(self.address)[0]

    @property
    def port(self) -> int:
        """The port part of `address`."""
        return split_hostport(self.address)[1]


def check_users(value: Mapping[str, str]) -> str | None:
    """A check: user names without a colon, each with a password hash."""
    for name, hashed in value.items():
        if not name or ":" in name:
            return f"user names without a colon (bad: {name!r})"
        try:
            passwords.parse(hashed)
        except ValueError as exc:
            return (
                f"a password hash as `relay hash-password` prints it ({passwords.SHAPE})"
                f" for user {name!r} ({exc})"
            )
    return None


def check_pattern(value: str) -> str | None:
    """A check: a route pattern (a domain, or an address pattern)."""
    if not value or value.count("@") > 1 or any(c.isspace() for c in value):
        return "a domain (example.com, *.example.com, *) or an address pattern (*@example.com)"
    return None


def fraction(value: float) -> str | None:
    """A check: a fraction from 0 up to (not including) 1."""
    return None if 0 <= value < 1 else "a fraction from 0 up to (not including) 1"


def check_schedule(value: tuple[float, ...]) -> str | None:
    """A check: a non-empty list of seconds, each greater than 0."""
    if not value or any(v <= 0 for v in value):
        return "a non-empty list of seconds, each greater than 0"
    return None


def check_optional_hostport(value: str) -> str | None:
    """A check: empty, or HOST:PORT."""
    return None if not value else check_hostport(value)


def check_ca_file(key: str, path: str, source: str) -> None:
    """Raise ConfigError unless `path` is empty or a readable file."""
    if path and not os.path.isfile(path):
        raise ConfigError(source, key, "a readable PEM file of CA certificates", path)
