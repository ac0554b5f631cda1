"""relay.toml and RELAY_* environment variables, read once into one frozen `Config`.

Every setting is declared once, in the module of its section, with its default and its
meaning (`setting(...)`); relay.toml carries the same words. The loader (settings.py) is
driven by the dataclasses' type hints: an unknown key, a value of the wrong type or a bad
value raises `ConfigError` naming the file, the key and what was expected. Secrets such
as upstream passwords are read from the environment (env.py) at load time, and nowhere
else. Callers import from here and need not know the split:

    server.py      [server]                 listeners.py  [[listener]], [tls], [auth]
    web.py         [web]                    storage.py    [storage]
    delivery.py    [[route]], [upstream.NAME], [mx], [delivery]
    checks.py      [checks]                 root.py       Config, one field per section
    chaos.py       [chaos], [[chaos.rule]]: failures on purpose
    tags.py        [tags], [[tag]]       mailboxes.py  [mailboxes], [[mailbox]]
    events.py      [[webhook]], [suppression]
    loading.py     file + environment → Config, and its warnings
    resolution.py  "auto" settings decided, the `relay serve` flags applied
    values.py      value checks the sections share; dburl.py, durations.py: typed values
"""

from __future__ import annotations

from relay.config.chaos import ChaosConfig, ChaosMatch, ChaosRuleConfig, parse_rule
from relay.config.checks import ChecksConfig
from relay.config.delivery import (
    ConnectionSettings,
    DeliveryConfig,
    MxConfig,
    RouteConfig,
    TlsMode,
    TlsSetting,
    UpstreamConfig,
    tls_mode,
)
from relay.config.events import EVENTS, SuppressionConfig, WebhookConfig
from relay.config.listeners import AuthConfig, ListenerConfig, TLSConfig
from relay.config.loading import config_warnings, load_config
from relay.config.mailboxes import DEFAULT_MAILBOX, MailboxesConfig, MailboxRule
from relay.config.resolution import parse_roles, resolved, with_overrides
from relay.config.root import Config
from relay.config.server import MAX_SMTP_PROCESSES, ROLES, Role, ServerConfig
from relay.config.storage import StorageConfig
from relay.config.tags import TagRule, TagsConfig
from relay.config.values import split_hostport
from relay.config.web import WebConfig

__all__ = [
    "DEFAULT_MAILBOX",
    "EVENTS",
    "MAX_SMTP_PROCESSES",
    "ROLES",
    "AuthConfig",
    "ChaosConfig",
    "ChaosMatch",
    "ChaosRuleConfig",
    "ChecksConfig",
    "Config",
    "ConnectionSettings",
    "DeliveryConfig",
    "ListenerConfig",
    "MailboxRule",
    "MailboxesConfig",
    "MxConfig",
    "Role",
    "RouteConfig",
    "ServerConfig",
    "StorageConfig",
    "SuppressionConfig",
    "TLSConfig",
    "TagRule",
    "TagsConfig",
    "TlsMode",
    "TlsSetting",
    "UpstreamConfig",
    "WebConfig",
    "WebhookConfig",
    "config_warnings",
    "load_config",
    "parse_roles",
    "parse_rule",
    "resolved",
    "split_hostport",
    "tls_mode",
    "with_overrides",
]
