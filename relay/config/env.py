"""What the environment adds to relay.toml: RELAY_DATABASE_URL, RELAY_<SECTION>_<KEY> for
secret keys, and each upstream's AUTH password from the variable its `password_env` names.
Read here, at load time, and nowhere else."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from relay.config.delivery import UpstreamConfig, tls_mode
from relay.config.events import WebhookConfig
from relay.config.root import Config
from relay.config.values import check_ca_file
from relay.errors import ConfigError


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """RELAY_DATABASE_URL and RELAY_<SECTION>_<KEY> for secret keys override the file."""
    if env.get("RELAY_DATABASE_URL"):
        data.setdefault("storage", {})["url"] = env["RELAY_DATABASE_URL"]
    hints = typing.get_type_hints(Config)
    for section, tp in hints.items():
        if not dataclasses.is_dataclass(tp):
            continue
        for f in dataclasses.fields(tp):
            name = f"RELAY_{section}_{f.name}".upper()
            if f.metadata.get("secret") and name in env:
                data.setdefault(section, {})[f.name] = env[name]


def upstream_secrets(
    name: str, upstream: UpstreamConfig, env: Mapping[str, str], source: str
) -> UpstreamConfig:
    """Check one [upstream.NAME] and fill in its password from the environment."""
    key = f"upstream.{name}"
    if name == "mx":
        raise ConfigError(source, key, 'another name: "mx" means MX delivery in routes')
    check_ca_file(f"{key}.ca_file", upstream.ca_file, source)
    if upstream.password_env and not upstream.username:
        raise ConfigError(source, f"{key}.username", "a user name when password_env is set")
    if upstream.username and upstream.tls == "opportunistic":
        raise ConfigError(
            source,
            f"{key}.tls",
            'starttls or implicit with AUTH (or "none" to send credentials in clear)',
            upstream.tls,
        )
    upstream = dataclasses.replace(upstream, tls=tls_mode(upstream.tls, upstream.username))
    if not upstream.password_env:
        return upstream
    password = env.get(upstream.password_env)
    if password is None:
        raise ConfigError(
            source,
            f"{key}.password_env",
            f"an environment variable {upstream.password_env} holding the password",
            "not set",
        )
    return dataclasses.replace(upstream, password=password)


def webhook_secret(
    index: int, hook: WebhookConfig, env: Mapping[str, str], source: str
) -> WebhookConfig:
    """Check one [[webhook]] and fill in its signing secret from the environment."""
    key = f"webhook[{index}]"
    if not hook.url:
        raise ConfigError(source, f"{key}.url", "the URL events are POSTed to")
    if not hook.secret_env:
        return hook
    secret = env.get(hook.secret_env)
    if not secret:
        raise ConfigError(
            source,
            f"{key}.secret_env",
            f"an environment variable {hook.secret_env} holding the signing secret",
            "not set",
        )
    return dataclasses.replace(hook, secret=secret)
