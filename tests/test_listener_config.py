"""[[listener]], [tls] and [auth] in relay.toml: defaults by kind, refusals that name the
key, the --smtp shortcut, and relay.toml documenting every key with its default."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from relay import passwords
from relay.config import (
    AuthConfig,
    ListenerConfig,
    TLSConfig,
    load_config,
    with_overrides,
)
from relay.errors import ConfigError
from relay.smtp.tls import dev_cert_dir

ROOT = Path(__file__).resolve().parent.parent
HASH = passwords.hash_password("pw", log2_n=4)
USERS = f'[auth.users]\nalice = "{HASH}"\n'
CERT = '[tls]\ncert = "/etc/relay/cert.pem"\nkey = "/etc/relay/key.pem"\n'


def load(tmp_path: Path, text: str) -> Any:
    """Load `text` as relay.toml."""
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return load_config(path, env={})


@pytest.mark.parametrize(
    ("kind", "extra", "sections", "starttls", "auth"),
    [
        ("smtp", "", "", "off", "off"),
        ("smtp", "", USERS, "off", "off"),
        ("smtp", "", USERS + CERT, "optional", "optional"),
        ("smtp", "allow_insecure_auth = true", USERS, "off", "optional"),
        ("submission", "", USERS, "required", "required"),
        ("submission", 'auth = "off"', "", "required", "off"),
        ("smtps", "", USERS, "off", "required"),
        ("smtp", 'starttls = "required"', "", "required", "off"),
    ],
)
def test_auto_settings_follow_the_kind(
    tmp_path: Path, kind: str, extra: str, sections: str, starttls: str, auth: str
) -> None:
    """starttls and auth "auto" become what the RFCs expect of each kind of listener."""
    config = load(tmp_path, f'[[listener]]\nkind = "{kind}"\n{extra}\n{sections}')
    (listener,) = config.listener
    assert (listener.starttls, listener.auth) == (starttls, auth)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[listener]]\nkind = "submission"\n', "listener[0].auth"),
        (f'[[listener]]\nkind = "smtps"\nstarttls = "required"\n{USERS}', "listener[0].starttls"),
        (f'[[listener]]\nauth = "required"\n{USERS}', "listener[0].auth"),
        ('[[listener]]\ncert = "c.pem"\n', "listener[0].cert"),
        ('[tls]\ncert = "c.pem"\n', "tls.cert"),
        ('[auth.users]\nalice = "plain-text"\n', "auth.users"),
        ('[auth.users]\nalice = "$scrypt$ln=99,r=8,p=1$AAAA$AAAA"\n', "auth.users"),
        ('[[listener]]\nkind = "lmtp"\n', "listener[0].kind"),
        ('[[listener]]\nmax_connections = 0\n', "listener[0].max_connections"),
        ('[[listener]]\ndata_timeout = -1\n', "listener[0].data_timeout"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused(tmp_path: Path, text: str, key: str) -> None:
    """A setting that cannot work is a ConfigError naming the file and the key."""
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text)
    assert refused.value.key == key
    assert str(refused.value).startswith(f"{tmp_path / 'relay.toml'}: {key}: expected")


@pytest.mark.parametrize(
    ("first", "kept_size"),
    [('kind = "smtp"\nmax_message_size = 1234', 1234), ('kind = "submission"', 33554432)],
)
def test_smtp_flag_is_one_plain_listener(tmp_path: Path, first: str, kept_size: int) -> None:
    """--smtp leaves one plain listener there, keeping the first one's settings if plain."""
    config = load(
        tmp_path,
        f'[[listener]]\nname = "first"\n{first}\n'
        f'[[listener]]\nname = "smtps"\nkind = "smtps"\n{USERS}',
    )
    (listener,) = with_overrides(config, smtp="127.0.0.1:2525").listener
    assert (listener.kind, listener.address, listener.auth) == ("smtp", "127.0.0.1:2525", "off")
    assert listener.max_message_size == kept_size


def toml_value(value: Any) -> str:
    """A default as relay.toml spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def comment_text(text: str) -> str:
    """Every comment of relay.toml run together, whitespace collapsed."""
    words = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return " ".join(" ".join(words).split())


@pytest.mark.parametrize("section", [ListenerConfig, TLSConfig, AuthConfig])
def test_relay_toml_documents_every_key_with_its_default(section: type) -> None:
    """Every key of [[listener]], [tls] and [auth] is in relay.toml with its default and the
    help text of its declaration."""
    text = (ROOT / "relay.toml").read_text()
    comments = comment_text(text)
    for field in dataclasses.fields(section):
        help_text = " ".join(field.metadata["help"].split())
        assert help_text in comments, field.name
        if field.default is dataclasses.MISSING:  # [auth.users]: a table, shown by example
            continue
        line = f"{field.name} = {toml_value(field.default)}"
        assert re.search(rf"^(# )?{re.escape(line)}$", text, re.MULTILINE), line


def test_relay_toml_production_example_is_valid(tmp_path: Path) -> None:
    """Uncommenting the production example gives listeners on 25, 587, 465, 110 and 995 as
    described."""
    text = (ROOT / "relay.toml").read_text()
    before, rest = text.split("# BEGIN production example", 1)
    block, after = rest.split("# END production example", 1)
    lines = block.splitlines()[2:]  # the marker's own two comment lines stay out
    uncommented = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines)
    config = load(tmp_path, before + uncommented + after)
    got = {lc.name: (lc.port, lc.kind, lc.starttls, lc.auth) for lc in config.listener}
    assert got == {
        "smtp": (1025, "smtp", "optional", "optional"),
        "mx": (25, "smtp", "optional", "optional"),
        "submission": (587, "submission", "required", "required"),
        "smtps": (465, "smtps", "off", "required"),
        "pop3": (110, "pop3", "optional", "required"),
        "pop3s": (995, "pop3s", "off", "required"),
    }


@pytest.mark.parametrize(
    ("url", "from_file", "setting", "expected"),
    [
        ("sqlite+aiosqlite:////var/lib/relay/relay.db", True, "", "/var/lib/relay/relay-tls"),
        ("sqlite+aiosqlite:///relay.db", False, "", "relay-tls"),
        ("postgresql+asyncpg://relay@db/relay", True, "", "{config_dir}/relay-tls"),
        ("postgresql+asyncpg://relay@db/relay", False, "", "relay-tls"),
        ("postgresql+asyncpg://relay@db/relay", True, "/srv/certs", "/srv/certs"),
    ],
)
def test_dev_certificate_directory(
    tmp_path: Path, url: str, from_file: bool, setting: str, expected: str
) -> None:
    """The development certificate lives beside the SQLite file, else beside the config."""
    text = f'[storage]\nurl = "{url}"\n[tls]\ndev_cert_dir = "{setting}"\n'
    config = (
        load(tmp_path, text)
        if from_file
        else dataclasses.replace(load(tmp_path, text), source="<defaults>")
    )
    assert dev_cert_dir(config) == Path(expected.format(config_dir=tmp_path))
