"""Loading: relay.toml and the environment → one frozen, checked `Config`, and the warnings
about what is valid but unwise."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relay.config.chaos import check_rule
from relay.config.dkim import load_keys
from relay.config.env import apply_env, upstream_secrets, webhook_secret
from relay.config.limits import inherit_mx_limits
from relay.config.resolution import resolved
from relay.config.root import Config
from relay.config.settings import build
from relay.config.values import check_ca_file
from relay.config.web import user_tables
from relay.errors import ConfigError


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (None: built-in defaults) and the environment into a frozen Config."""
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, "(file)", "a readable file", "not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    if isinstance(data.get("listener"), dict):
        raise ConfigError(source, "listener", "[[listener]] tables (an array of tables)")
    apply_env(data, env)
    inherit_mx_limits(data)
    user_tables(data, source)
    config = build(Config, data, source)
    for i, rule in enumerate(config.route):
        if (
            rule.action == "relay"
            and rule.upstream != "mx"
            and rule.upstream not in config.upstream
        ):
            raise ConfigError(
                source, f"route[{i}].upstream", _upstream_names(config), rule.upstream
            )
        if rule.action != "relay" and rule.upstream:
            raise ConfigError(source, f"route[{i}].upstream", "no upstream unless action = relay")
    for i, tag_rule in enumerate(config.tag):
        for key in ("match", "tags"):
            if not getattr(tag_rule, key):
                raise ConfigError(source, f"tag[{i}].{key}", "a value: each [[tag]] needs both")
    for i, mailbox_rule in enumerate(config.mailbox):
        if not mailbox_rule.match:
            raise ConfigError(
                source, f"mailbox[{i}].match", "recipient patterns: each [[mailbox]] needs one"
            )
    listener_names = [listener.name for listener in config.listener]
    if len(set(listener_names)) != len(listener_names):
        raise ConfigError(
            source, "listener.name", "a different name for each listener", listener_names
        )
    upstreams = {
        name: upstream_secrets(name, upstream, env, source)
        for name, upstream in config.upstream.items()
    }
    check_ca_file("mx.ca_file", config.mx.ca_file, source)
    for i, chaos_rule in enumerate(config.chaos.rule):
        check_rule(chaos_rule, source, f"chaos.rule[{i}].")
    keys = types.MappingProxyType(load_keys(config.dkim, source))
    hooks = tuple(webhook_secret(i, hook, env, source) for i, hook in enumerate(config.webhook))
    config = dataclasses.replace(
        config, upstream=types.MappingProxyType(upstreams), dkim=keys, webhook=hooks
    )
    return resolved(dataclasses.replace(config, source=source))


def _upstream_names(config: Config) -> str:
    """What a relay route may name: "mx" or one of the [upstream.NAME] tables defined."""
    if not config.upstream:
        return '"mx", or the NAME of an [upstream.NAME] table (this file defines none)'
    names = ", ".join(f'"{name}"' for name in sorted(config.upstream))
    return f'"mx" or a defined upstream: {names}'


def config_warnings(config: Config) -> list[str]:
    """What is valid but unwise in `config`, one sentence each (check-config and serve say
    them): an upstream that sends its password in clear, a POP3 listener that takes
    passwords in clear beyond loopback, a per-user mailbox no POP3 user can read."""
    found = [
        f'{config.source}: upstream.{name}.tls: "none" sends the password of user'
        f' {upstream.username!r} in clear; use "starttls" or "implicit"'
        for name, upstream in config.upstream.items()
        if upstream.username and upstream.tls == "none"
    ]
    found += [
        f"{config.source}: listener {lc.name!r}: allow_insecure_auth on {lc.address} lets"
        " POP3 passwords cross the network in clear; keep it to loopback"
        for lc in config.listener
        if lc.is_pop3 and lc.allow_insecure_auth and not _loopback(lc.host)
    ]
    if config.mailboxes.mode == "per-user" and any(lc.is_pop3 for lc in config.listener):
        found += [
            f"{config.source}: mailbox {rule.name!r}: no [auth.users] user of that name,"
            " so no POP3 session can read it"
            for rule in config.mailbox
            if rule.name not in config.auth.users
        ]
    return found


def _loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
