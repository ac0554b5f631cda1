"""`Config`: the whole configuration, one field per section of relay.toml."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.config.chaos import ChaosConfig
from relay.config.checks import ChecksConfig
from relay.config.delivery import DeliveryConfig, MxConfig, RouteConfig, UpstreamConfig
from relay.config.dkim import DkimConfig
from relay.config.events import SuppressionConfig, WebhookConfig
from relay.config.listeners import AuthConfig, ListenerConfig, TLSConfig
from relay.config.mailboxes import MailboxesConfig, MailboxRule
from relay.config.server import ServerConfig
from relay.config.storage import StorageConfig
from relay.config.tags import TagRule, TagsConfig
from relay.config.web import WebConfig


@dataclass(frozen=True)
class Config:
    """The whole configuration: made once, frozen, passed down to whoever needs a part."""

    server: ServerConfig = ServerConfig()
    listener: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    web: WebConfig = WebConfig()
    storage: StorageConfig = StorageConfig()
    tls: TLSConfig = TLSConfig()
    auth: AuthConfig = AuthConfig()
    route: tuple[RouteConfig, ...] = ()
    upstream: Mapping[str, UpstreamConfig] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    mx: MxConfig = MxConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    checks: ChecksConfig = ChecksConfig()
    tags: TagsConfig = TagsConfig()
    tag: tuple[TagRule, ...] = ()
    dkim: Mapping[str, DkimConfig] = field(default_factory=lambda: types.MappingProxyType({}))
    chaos: ChaosConfig = ChaosConfig()
    mailboxes: MailboxesConfig = MailboxesConfig()
    mailbox: tuple[MailboxRule, ...] = ()
    webhook: tuple[WebhookConfig, ...] = ()
    suppression: SuppressionConfig = SuppressionConfig()
    source: str = field(default="<defaults>", metadata={"internal": True})

    @property
    def mode(self) -> str:
        """What happens to accepted mail: capture, relay (everything) or mixed."""
        actions = {r.action for r in self.route}
        if "relay" not in actions:
            return "capture"
        if any(r.action != "relay" for r in self.route) or self.route[-1].match != "*":
            return "mixed"
        return "relay"
