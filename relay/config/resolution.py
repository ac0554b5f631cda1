"""Resolution: the "auto" switches of every listener decided, what must hold across
sections checked, and the `relay serve` flags applied over the file."""

from __future__ import annotations

import dataclasses
import typing

from relay.config.dburl import database_url
from relay.config.listeners import ListenerConfig
from relay.config.root import Config
from relay.config.server import ROLES, Role, check_roles
from relay.config.values import check_hostport, check_url
from relay.errors import ConfigError


def _resolve_listener(index: int, lc: ListenerConfig, config: Config) -> ListenerConfig:
    """`lc` with its "auto" switches decided by kind; raises ConfigError on a useless mix."""
    key = f"listener[{index}]"
    if bool(lc.cert) != bool(lc.key):
        raise ConfigError(config.source, f"{key}.cert", "both cert and key, or neither")
    if lc.is_pop3:
        return _resolve_pop3(key, lc, config)
    has_cert = bool(lc.cert or config.tls.cert)
    starttls = lc.starttls
    if starttls == "auto":
        starttls = "optional" if has_cert else "off"
        if lc.kind != "smtp":
            starttls = "required" if lc.kind == "submission" else "off"
    elif lc.kind == "smtps" and starttls != "off":
        raise ConfigError(
            config.source, f"{key}.starttls", '"off" or "auto" on an smtps listener', starttls
        )
    auth = lc.auth
    if auth == "auto":
        usable = starttls != "off" or lc.allow_insecure_auth
        auth = "optional" if config.auth.users and usable else "off"
        if lc.kind in ("submission", "smtps"):
            auth = "required"
    if auth != "off" and not config.auth.users:
        raise ConfigError(
            config.source,
            f"{key}.auth",
            f"users in [auth.users] (`relay hash-password` makes a hash) for auth = {auth!r}"
            ' on this listener, or auth = "off"',
        )
    if auth != "off" and starttls == "off" and lc.kind != "smtps" and not lc.allow_insecure_auth:
        raise ConfigError(
            config.source,
            f"{key}.auth",
            'TLS for AUTH: starttls = "optional" or "required", allow_insecure_auth ='
            ' true, or auth = "off"',
        )
    return dataclasses.replace(lc, starttls=starttls, auth=auth)


def _resolve_pop3(key: str, lc: ListenerConfig, config: Config) -> ListenerConfig:
    """A POP3 listener: STLS offered on pop3 (a development certificate when none is set),
    never on pop3s; login always required, so [auth.users] must name someone."""
    if lc.kind == "pop3s" and lc.starttls not in ("auto", "off"):
        raise ConfigError(
            config.source, f"{key}.starttls", '"off" or "auto" on a pop3s listener', lc.starttls
        )
    starttls = "off" if lc.kind == "pop3s" else lc.starttls
    if starttls == "auto":
        starttls = "optional"
    if not config.auth.users:
        raise ConfigError(
            config.source,
            f"{key}.kind",
            "users in [auth.users] (`relay hash-password` makes a hash): POP3 logs in as one",
            lc.kind,
        )
    if lc.kind == "pop3" and starttls == "off" and not lc.allow_insecure_auth:
        raise ConfigError(
            config.source,
            f"{key}.starttls",
            'STLS for logins ("auto", "optional" or "required"), or allow_insecure_auth = true',
            starttls,
        )
    return dataclasses.replace(lc, starttls=starttls, auth="required")


def resolved(config: Config) -> Config:
    """`config` with every listener's "auto" settings decided (idempotent)."""
    if bool(config.tls.cert) != bool(config.tls.key):
        raise ConfigError(config.source, "tls.cert", "both cert and key, or neither")
    listeners = tuple(_resolve_listener(i, lc, config) for i, lc in enumerate(config.listener))
    server = config.server
    if not server.smtp_in_primary and server.smtp_processes == 1 and "smtp" in server.roles:
        raise ConfigError(
            config.source,
            "server.smtp_in_primary",
            "true while smtp_processes is 1 (no process would accept SMTP)",
            "false",
        )
    if config.chaos.enabled and server.smtp_processes > 1:
        raise ConfigError(
            config.source,
            "chaos.enabled",
            "false while [server] smtp_processes is more than 1 (chaos rules and their"
            " counters live in one process)",
            "true",
        )
    if server.smtp_processes > 1 and "smtp" in server.roles:
        for i, lc in enumerate(listeners):
            if lc.port == 0:
                raise ConfigError(
                    config.source,
                    f"listener[{i}].address",
                    "a fixed port (not 0) when [server] smtp_processes is more than 1",
                    lc.address,
                )
        # Every process binds the same ports: the kernel spreads connections among them.
        listeners = tuple(dataclasses.replace(lc, reuse_port=True) for lc in listeners)
    return dataclasses.replace(config, listener=listeners)


def parse_roles(value: str) -> tuple[Role, ...]:
    """ "smtp,delivery" → ("smtp", "delivery"); raises ValueError naming a bad role."""
    roles = tuple(part.strip() for part in value.split(",") if part.strip())
    for role in roles:
        if role not in ROLES:
            raise ValueError(role)
    if check_roles(roles):
        raise ValueError(value)
    return typing.cast(tuple[Role, ...], roles)


def with_overrides(
    config: Config,
    smtp: str | None = None,
    web: str | None = None,
    db: str | None = None,
    roles: str | None = None,
    chaos: bool = False,
) -> Config:
    """Apply the `relay serve` flags, which win over the file and the environment."""
    source = "command line"
    if chaos:
        config = dataclasses.replace(config, chaos=dataclasses.replace(config.chaos, enabled=True))
    if roles is not None:
        try:
            chosen = parse_roles(roles)
        except ValueError:
            raise ConfigError(
                source, "--role", "roles among smtp, web, delivery, each once", roles
            ) from None
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, roles=chosen)
        )
    if smtp is not None:
        if problem := check_hostport(smtp):
            raise ConfigError(source, "--smtp", problem, smtp)
        # One plain listener: the first one's settings if it is plain, else the defaults.
        # POP3 listeners stay as they are.
        first = config.listener[0] if config.listener else ListenerConfig()
        base = first if first.kind == "smtp" else ListenerConfig()
        pop3 = tuple(lc for lc in config.listener if lc.is_pop3)
        plain = dataclasses.replace(base, address=smtp)
        config = dataclasses.replace(config, listener=(plain, *pop3))
    if web is not None:
        if problem := check_hostport(web):
            raise ConfigError(source, "--web", problem, web)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, address=web))
    if db is not None:
        if problem := check_url(db):
            raise ConfigError(source, "--db", problem, db)
        storage = dataclasses.replace(config.storage, url=database_url(db))
        config = dataclasses.replace(config, storage=storage)
    return resolved(config)
