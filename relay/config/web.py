"""[web]: the web UI and API: address, page size, who may log in."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.config.settings import setting
from relay.config.values import Bound, check_hostport, check_users, positive
from relay.errors import ConfigError


@dataclass(frozen=True)
class WebConfig(Bound):
    """[web]: the web UI and API."""

    address: str = setting("127.0.0.1:8025", "HOST:PORT of the web UI and API.", check_hostport)
    page_size: int = setting(50, "Messages per page in the list.", positive)
    users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={
            "help": "[web.users] NAME = HASH: people who may use the web UI (HTTP basic auth);"
            " HASH from `relay hash-password`. Empty with no token: no login asked. A table"
            " [web.users.NAME] with hash = HASH and admin = true makes an admin.",
            "check": check_users,
            "secret": False,
            "quiet": True,  # an error names the user, never repeats the table of hashes
        },
    )
    admins: tuple[str, ...] = setting(
        (),
        "Names of [web.users] who see every mailbox (with a mailbox filter), besides those"
        ' whose table says admin = true; with [mailboxes] mode = "per-user" the others'
        " see only the mailbox of their name.",
    )
    token: str = setting(
        "",
        "A bearer token that also grants access (Authorization: Bearer TOKEN), for scripts;"
        " RELAY_WEB_TOKEN overrides it. Empty: none.",
        secret=True,
    )
    secret: str = setting(
        "",
        "Key that signs the forms' CSRF tokens; give every relay behind one web address the"
        " same one (RELAY_WEB_SECRET overrides it). Empty: a random key per process.",
        secret=True,
    )
    reuse_port: bool = setting(
        False,
        "Share the web address with other relay processes on this host (SO_REUSEPORT).",
    )

    @property
    def auth_required(self) -> bool:
        """True when the web UI asks who is there."""
        return bool(self.users or self.token)


def user_tables(data: dict[str, Any], source: str) -> None:
    """Read the table form of a web user, `[web.users.NAME]` with `hash` and `admin`, into
    the plain form (NAME = HASH) and `[web] admins`, in the TOML data before it is built."""
    web = data.get("web")
    users = web.get("users") if isinstance(web, dict) else None
    if not isinstance(web, dict) or not isinstance(users, dict):
        return
    admins = list(web.get("admins") or [])
    for name, value in list(users.items()):
        if not isinstance(value, dict):
            continue
        key = f"web.users.{name}"
        unknown = set(value) - {"hash", "admin"}
        if unknown or not isinstance(value.get("hash"), str):
            raise ConfigError(source, key, "hash = HASH and, optionally, admin = true", None)
        if not isinstance(value.get("admin", False), bool):
            raise ConfigError(source, f"{key}.admin", "true or false", value.get("admin"))
        users[name] = value["hash"]
        if value.get("admin") and name not in admins:
            admins.append(name)
    if admins:
        web["admins"] = admins
