"""Configuration of routes, upstreams, MX and delivery: defaults, secrets, mistakes, docs."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import (
    Config,
    ConnectionSettings,
    DeliveryConfig,
    MxConfig,
    RouteConfig,
    UpstreamConfig,
    load_config,
)
from relay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SMARTHOST = """
[[route]]
match = "*@ourcompany.example"
action = "relay"
upstream = "smarthost"
[upstream.smarthost]
host = "smtp.ourcompany.example"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    """Load `text` as a relay.toml."""
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return load_config(path, env=env or {})


def test_defaults_follow_the_issue() -> None:
    """Pools of 4, 100 messages a connection, 30 s idle; retries ~1 m..2 h for 5 days; no DSN."""
    upstream = UpstreamConfig()
    assert (upstream.tls, upstream.verify) == ("auto", True)
    assert (upstream.max_connections, upstream.max_messages_per_connection) == (4, 100)
    assert upstream.idle_timeout == 30.0
    delivery = DeliveryConfig()
    assert delivery.retry_schedule == (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)
    assert delivery.max_age == 5 * 86400
    assert delivery.dsn is False
    assert (MxConfig().tls, MxConfig().verify, MxConfig().port) == ("opportunistic", False, 25)


@pytest.mark.parametrize(
    ("extra", "tls"),
    [
        ("", "opportunistic"),
        ('username = "relay"\npassword_env = "SMART_PW"\n', "starttls"),
        ('tls = "auto"\nusername = "relay"\n', "starttls"),
        ('tls = "none"\n', "none"),
        ('tls = "implicit"\nusername = "relay"\n', "implicit"),
    ],
)
def test_upstream_tls_defaults_to_opportunistic_unless_it_logs_in(
    tmp_path: Path, extra: str, tls: str
) -> None:
    """tls = "auto" (the default) is opportunistic without a username, starttls with one;
    an explicit value is kept."""
    config = load(tmp_path, SMARTHOST + extra, env={"SMART_PW": "x"})
    assert config.upstream["smarthost"].tls == tls


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        ('username = "relay"\npassword_env = "SMART_PW"\ntls = "none"\n', True),
        ('username = "relay"\npassword_env = "SMART_PW"\n', False),
        ('tls = "none"\n', False),
    ],
)
def test_check_config_warns_of_a_password_sent_in_clear(
    tmp_path: Path, extra: str, warned: bool
) -> None:
    """tls = "none" with a username: `relay check-config` warns naming the key, exit 0."""
    path = tmp_path / "relay.toml"
    path.write_text(SMARTHOST + extra)
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SMART_PW": "x"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid" in result.stdout
    warning = f'relay: warning: {path}: upstream.smarthost.tls: "none" sends the password'
    assert (warning in result.stderr) is warned, result.stderr


def test_password_comes_from_the_named_environment_variable(tmp_path: Path) -> None:
    """password_env names a variable read once at load time; the password is never shown."""
    config = load(
        tmp_path,
        SMARTHOST + 'username = "relay"\npassword_env = "SMART_PW"\n',
        env={"SMART_PW": "hunter2"},
    )
    upstream = config.upstream["smarthost"]
    assert upstream.password == "hunter2"
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('username = "relay"\npassword_env = "MISSING_PW"\n', "upstream.smarthost.password_env"),
        ('password_env = "SMART_PW"\n', "upstream.smarthost.username"),
        ('username = "relay"\ntls = "opportunistic"\n', "upstream.smarthost.tls"),
        ('ca_file = "/nonexistent/ca.pem"\n', "upstream.smarthost.ca_file"),
        ('tls = "sometimes"\n', "upstream.smarthost.tls"),
        ("max_connections = 0\n", "upstream.smarthost.max_connections"),
        ("[upstream.mx]\n", "upstream.mx"),
        ("[delivery]\nretry_schedule = []\n", "delivery.retry_schedule"),
        ("[delivery]\nretry_jitter = 1.5\n", "delivery.retry_jitter"),
        ("[delivery]\nmax_age = 0\n", "delivery.max_age"),
        ("[mx]\nport = 0\n", "mx.port"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, extra: str, key: str) -> None:
    """Each bad value is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, SMARTHOST + extra, env={"SMART_PW": "x"})
    assert raised.value.key == key


def test_relay_toml_is_valid_and_documents_every_delivery_key() -> None:
    """The shipped relay.toml loads, and carries each delivery key's help in the same words."""
    load_config(ROOT / "relay.toml", env={})
    lines = (ROOT / "relay.toml").read_text().splitlines()
    prose = " ".join(re.sub(r"^[#\s]*", "", line) for line in lines)
    for section in (ConnectionSettings, UpstreamConfig, MxConfig, DeliveryConfig, RouteConfig):
        for field in dataclasses.fields(section):
            help_text = field.metadata.get("help")
            if help_text:
                assert help_text in prose, f"{section.__name__}.{field.name}"
                assert re.search(rf"^#*\s*{field.name} =", "\n".join(lines), re.M), field.name
