"""[[webhook]] and [suppression] in relay.toml: defaults, the secret from the environment,
errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    """A relay.toml with `text`."""
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def test_a_webhook_gets_its_secret_from_the_environment_and_defaults(tmp_path: Path) -> None:
    """secret_env names the variable read at load; events, timeout and max_age default
    to all seven, 10 s and 24 h; [suppression] defaults to fail, never expiring."""
    path = write(tmp_path, '[[webhook]]\nurl = "https://h.example/x"\nsecret_env = "HOOK_KEY"\n')
    config = load_config(path, env={"HOOK_KEY": "k3y"})
    [hook] = config.webhook
    assert hook.secret == "k3y" and "k3y" not in repr(hook)
    assert len(hook.events) == 7 and hook.timeout == 10.0 and hook.max_age_seconds == 86400
    assert (config.suppression.action, config.suppression.ttl_seconds) == ("fail", 0.0)
    assert config.suppression.on_policy is False


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[webhook]]\nurl = "https://h.example/x"\nsecret_env = "MISSING"\n', "secret_env"),
        ('[[webhook]]\nurl = "ftp://h.example/x"\n', "url"),
        ('[[webhook]]\nurl = "https://h.example/x"\nevents = ["sent"]\n', "events"),
        ('[[webhook]]\nurl = "https://h.example/x"\nmatch = "is:nonsense"\n', "match"),
        ('[[webhook]]\nurl = "https://h.example/x"\nmax_age = "soon"\n', "max_age"),
        ('[[webhook]]\nevents = ["failed"]\n', "url"),
        ('[suppression]\naction = "drop"\n', "action"),
        ('[suppression]\nttl = "forever"\n', "ttl"),
    ],
)
def test_a_bad_webhook_or_suppression_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    """Each mistake stops loading with an error naming the key."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert key in str(caught.value)
