"""A relay with chaos on for the chaos tests, and its API's rules at hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from relay.config import ChaosConfig
from tests.support import RunningRelay, listener, make_config, users


def chaotic_relay(directory: Path) -> RunningRelay:
    """A started relay with chaos on and two listeners: "plain", and "authed" (AUTH over
    plain text, for the tests)."""
    config = make_config(
        f"sqlite+aiosqlite:///{directory / 'relay.db'}",
        listener=(
            listener("plain"),
            listener("authed", auth="optional", allow_insecure_auth=True),
        ),
        auth=users(),
        chaos=ChaosConfig(enabled=True),
    )
    return RunningRelay(config).start()


def clear(relay: RunningRelay) -> None:
    """Remove every rule, reset Mailpit's triggers, delete every message."""
    with httpx.Client(base_url=relay.web_url) as api:
        api.delete("/api/v1/chaos/rules").raise_for_status()
        api.put("/api/v1/chaos", json={}).raise_for_status()
        api.delete("/api/v1/messages").raise_for_status()


def add_rule(relay: RunningRelay, **rule: Any) -> dict[str, Any]:
    """Add a chaos rule over the API; the rule as answered."""
    with httpx.Client(base_url=relay.web_url) as api:
        response = api.post("/api/v1/chaos/rules", json=rule)
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()
    return added


def rule_now(relay: RunningRelay, rule_id: int) -> dict[str, Any]:
    """A rule as the API shows it now."""
    with httpx.Client(base_url=relay.web_url) as api:
        rules = api.get("/api/v1/chaos/rules").json()["rules"]
    [found] = [r for r in rules if r["id"] == rule_id]
    return dict(found)
