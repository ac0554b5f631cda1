"""scrypt password hashes (shared by SMTP AUTH and the web UI) and the [web] auth config."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError
from relay.passwords import hash_password, is_hash, verify_password

FAST = {"log2_n": 4}  # cheap parameters: these tests check logic, not cost


def test_hash_verifies_only_its_password() -> None:
    """A hash verifies its own password, not another, and is salted (two hashes differ)."""
    first, second = hash_password("pw", **FAST), hash_password("pw", **FAST)
    assert first != second
    assert verify_password("pw", first) and verify_password("pw", second)
    assert not verify_password("pW", first)


def test_default_cost_is_scrypt_2_14() -> None:
    """The default hash uses N=2**14, r=8, p=1 and verifies."""
    hashed = hash_password("s3cret")
    assert hashed.startswith("$scrypt$ln=14,r=8,p=1$")
    assert verify_password("s3cret", hashed)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain-text-password",
        "$bcrypt$12$abc$def",
        "$scrypt$ln=14,r=8,p=1$c2FsdA$",
        "$scrypt$ln=30,r=8,p=1$c2FsdA$" + "A" * 43,
        "$scrypt$ln=14,r=8,p=1$!!!$" + "A" * 43,
        "$scrypt$ln=x,r=8,p=1$c2FsdA$" + "A" * 43,
        "$scrypt$r=8,p=1$c2FsdA$" + "A" * 43,
    ],
)
def test_malformed_hashes_never_verify(bad: str) -> None:
    """A malformed or dangerous hash is refused, not an exception."""
    assert not is_hash(bad)
    assert not verify_password("anything", bad)


def test_config_reads_web_users_and_token(tmp_path: Path) -> None:
    """[web.users] and [web] token load; RELAY_WEB_TOKEN overrides the file's token."""
    hashed = hash_password("pw", **FAST)
    path = tmp_path / "relay.toml"
    path.write_text(f'[web]\ntoken = "from-file"\n[web.users]\nalice = "{hashed}"\n')
    config = load_config(path, env={})
    assert dict(config.web.users) == {"alice": hashed} and config.web.auth_required
    assert load_config(path, env={"RELAY_WEB_TOKEN": "from-env"}).web.token == "from-env"
    assert not load_config(None, env={}).web.auth_required


def test_config_refuses_a_plain_password(tmp_path: Path) -> None:
    """A user whose value is not a hash is a config error naming the key."""
    path = tmp_path / "relay.toml"
    path.write_text('[web.users]\nalice = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"web\.users.*relay hash-password"):
        load_config(path, env={})
