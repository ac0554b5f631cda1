"""[chaos] and [[chaos.rule]] in relay.toml: off by default, the shipped examples valid,
every key checked with an error that names it, `relay serve --chaos`, one process only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.config import ChaosMatch, ChaosRuleConfig, load_config, with_overrides
from relay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    """A relay.toml holding `text`."""
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_chaos_is_off_and_has_no_rules_by_default() -> None:
    """No [chaos]: disabled, no rules (and the shipped relay.toml keeps it so)."""
    for config in (load_config(None, env={}), load_config(ROOT / "relay.toml", env={})):
        assert (config.chaos.enabled, config.chaos.rule) == (False, ())


def test_the_examples_in_relay_toml_are_valid_rules(tmp_path: Path) -> None:
    """The commented [[chaos.rule]] examples of relay.toml, uncommented, load as written."""
    text = (ROOT / "relay.toml").read_text(encoding="utf-8")
    examples = text[text.index("# For example") :]
    lines = [
        line[2:]
        for line in examples.splitlines()
        if re.match(r"# (\[\[chaos\.rule\]\]|[a-z]+ = )", line)
    ]
    config = load_config(write(tmp_path, "[chaos]\nenabled = true\n" + "\n".join(lines)), env={})
    assert config.chaos.rule == (
        ChaosRuleConfig(stage="rcpt", match=ChaosMatch(recipient="*@flaky.example"), first=1),
        ChaosRuleConfig(
            leg="delivery", match=ChaosMatch(destination="relay:smarthost"), action="refused"
        ),
    )


def test_a_rule_reads_every_key(tmp_path: Path) -> None:
    """Every key of a rule, with its match table, is read into the rule."""
    config = load_config(
        write(
            tmp_path,
            "[chaos]\nenabled = true\n[[chaos.rule]]\nstage = 'data-end'\naction = 'reply'\n"
            "code = 554\nenhanced = '5.7.1'\ntext = 'no'\nprobability = 12.5\nseed = 9\n"
            "limit = 3\n[chaos.rule.match]\nsender = '*@a.example'\nrecipient = 'b.example'\n"
            "user = 'app'\nlistener = 'sub*'\nheader = 'X-Tenant: acme*'\n",
        ),
        env={},
    )
    [rule] = config.chaos.rule
    assert (rule.stage, rule.code, rule.enhanced, rule.text) == ("data-end", 554, "5.7.1", "no")
    assert (rule.probability, rule.seed, rule.limit, rule.first, rule.every) == (12.5, 9, 3, 0, 0)
    assert rule.match == ChaosMatch("*@a.example", "b.example", "app", "sub*", "X-Tenant: acme*")


@pytest.mark.parametrize(
    ("rule", "key", "expected"),
    [
        ("stage = 'rcpt'\ncode = 600", "chaos.rule[0].code", "a reply code from 400 to 599"),
        ("stage = 'later'", "chaos.rule[0].stage", "one of '', 'connect'"),
        ("code = 451", "chaos.rule[0].stage", "one of connect, helo, auth, mail"),
        ("stage = 'rcpt'\nevery = 2\nprobability = 5.0", "chaos.rule[0].first", "at most one"),
        (
            "stage = 'connect'\nmatch = {sender = '*@x.example'}",
            "chaos.rule[0].match.sender",
            "a stage from mail on",
        ),
        (
            "stage = 'rcpt'\nmatch = {recipient = 'two words'}",
            "chaos.rule[0].match.recipient",
            "a domain",
        ),
        (
            "leg = 'delivery'\naction = 'delay'\ndelay = 1.0",
            "chaos.rule[0].action",
            "one of reply, refused, timeout",
        ),
        ("stage = 'rcpt'\ndelay = -1.0", "chaos.rule[0].delay", "a number of 0 or more"),
    ],
)
def test_a_bad_rule_stops_the_load_naming_its_key(
    tmp_path: Path, rule: str, key: str, expected: str
) -> None:
    """check-config and serve refuse a rule that cannot work, naming file, key and why."""
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, f"[chaos]\nenabled = true\n[[chaos.rule]]\n{rule}\n"), env={})
    assert refused.value.key == key
    assert expected in refused.value.expected


def test_the_chaos_flag_turns_it_on() -> None:
    """`relay serve --chaos` is [chaos] enabled = true."""
    assert with_overrides(load_config(None, env={}), chaos=True).chaos.enabled is True
    assert with_overrides(load_config(None, env={})).chaos.enabled is False


def test_chaos_needs_one_smtp_process(tmp_path: Path) -> None:
    """Rules and their counters live in one process: chaos with smtp_processes above 1 is
    refused (from the file, and from the flag)."""
    text = "[server]\nsmtp_processes = 2\n[[listener]]\naddress = '127.0.0.1:2525'\n"
    with pytest.raises(ConfigError, match=r"chaos\.enabled: expected false while"):
        load_config(write(tmp_path, text + "[chaos]\nenabled = true\n"), env={})
    with pytest.raises(ConfigError, match=r"chaos\.enabled"):
        with_overrides(load_config(write(tmp_path, text), env={}), chaos=True)
