"""relay.toml → frozen Config: defaults, errors that name file and key, env and flag overrides."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from relay import passwords
from relay.config import Config, load_config, with_overrides
from relay.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    """Write a config file and return its path."""
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_serves_at_once() -> None:
    """The shipped relay.toml: SMTP 127.0.0.1:1025, web 8025, ./relay.db, capture everything."""
    config = load_config(ROOT / "relay.toml", env={})
    assert [listener.address for listener in config.listener] == ["127.0.0.1:1025"]
    assert config.web.address == "127.0.0.1:8025"
    assert config.storage.url == "sqlite+aiosqlite:///relay.db"
    assert config.storage.sqlite_synchronous == "full"
    assert config.mode == "capture"


def test_config_is_frozen() -> None:
    """Config objects cannot be changed after loading."""
    config = load_config(None, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.web = config.web  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[web]\nadress = '127.0.0.1:1'\n", "web.adress", "a known key"),
        ("[web]\npage_size = 'ten'\n", "web.page_size", "an integer"),
        ("[web]\npage_size = 0\n", "web.page_size", "greater than 0"),
        ("[web]\naddress = 'localhost'\n", "web.address", "HOST:PORT"),
        ("[storage]\nurl = 'oracle://x'\n", "storage.url", "sqlite+aiosqlite://"),
        ("[storage]\nsqlite_synchronous = 'off'\n", "storage.sqlite_synchronous", "one of"),
        (
            "[[listener]]\ntrusted_networks = ['10.0.0.0/33']\n",
            "listener[0].trusted_networks",
            "networks",
        ),
        ("[listener]\nname = 'x'\n", "listener", "[[listener]]"),
        ("[server]\nroles = ['smtp', 'smtp']\n", "server.roles", "each once"),
        ("[server]\nroles = []\n", "server.roles", "a non-empty list"),
        ("[server]\nroles = ['mail']\n", "server.roles[0]", "one of"),
        ("[storage]\nauto_migrate = 'yes'\n", "storage.auto_migrate", "true or false"),
        ("surprise = 1\n", "surprise", "a known key"),
        ("[server\n", "(syntax)", "valid TOML"),
        ("[checks]\nspamassassin = 'localhost'\n", "checks.spamassassin", "HOST:PORT"),
        ("[checks]\nlink_check_concurrency = 0\n", "checks.link_check_concurrency", "than 0"),
    ],
)
def test_bad_config_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    """Each problem raises ConfigError naming the file, the key and what was expected."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    message = str(error.value)
    assert message.startswith(f"{path}: {key}: expected ")
    assert expected in message


def test_check_config_exits_0_when_valid_and_2_with_the_same_message(tmp_path: Path) -> None:
    """`relay check-config` prints the loader's message and exits 2; 0 for a valid file."""
    good = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(ROOT / "relay.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    bad_path = write(tmp_path, "[web]\npage_size = -1\n")
    bad = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(bad_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert f"{bad_path}: web.page_size: expected a number greater than 0" in bad.stderr


def test_environment_overrides_database_url(tmp_path: Path) -> None:
    """RELAY_DATABASE_URL wins over [storage] url in the file."""
    path = write(tmp_path, "[storage]\nurl = 'sqlite+aiosqlite:///file.db'\n")
    url = "postgresql+asyncpg://u@127.0.0.1/db"
    assert load_config(path, env={"RELAY_DATABASE_URL": url}).storage.url == url


def test_flags_win_over_file_and_environment(tmp_path: Path) -> None:
    """--smtp, --web and --db replace what the file and the environment said."""
    path = write(tmp_path, "[web]\naddress = '127.0.0.1:9000'\n")
    config = load_config(path, env={"RELAY_DATABASE_URL": "sqlite+aiosqlite:///env.db"})
    config = with_overrides(
        config, smtp="127.0.0.1:2525", web="127.0.0.1:9999", db="sqlite+aiosqlite:///flag.db"
    )
    assert [listener.address for listener in config.listener] == ["127.0.0.1:2525"]
    assert config.web.address == "127.0.0.1:9999"
    assert config.storage.url == "sqlite+aiosqlite:///flag.db"


@pytest.mark.parametrize(
    ("flag", "roles"),
    [
        ("smtp", ("smtp",)),
        ("delivery, web", ("delivery", "web")),
        ("smtp,web,delivery", ("smtp", "web", "delivery")),
    ],
)
def test_role_flag_picks_what_the_process_runs(flag: str, roles: tuple[str, ...]) -> None:
    """--role replaces [server] roles; by default a process runs all three."""
    assert load_config(None, env={}).server.roles == ("smtp", "web", "delivery")
    assert with_overrides(load_config(None, env={}), roles=flag).server.roles == roles


@pytest.mark.parametrize("flag", ["", "smtp,smtp", "smtp,mail"])
def test_bad_role_flag_is_a_config_error(flag: str) -> None:
    """An unknown or repeated role is refused like a bad config key."""
    with pytest.raises(ConfigError, match="--role: expected roles among smtp, web, delivery"):
        with_overrides(Config(), roles=flag)


def test_bad_flag_is_a_config_error() -> None:
    """A malformed --smtp value is reported like a bad config key."""
    with pytest.raises(ConfigError, match="--smtp: expected HOST:PORT"):
        with_overrides(Config(), smtp="nowhere")


@pytest.mark.parametrize(
    ("upstreams", "expected"),
    [
        ("", '"mx", or the NAME of an [upstream.NAME] table (this file defines none)'),
        ("[upstream.local]\n[upstream.backup]\n", '"mx" or a defined upstream: "backup", "local"'),
    ],
)
def test_relay_route_must_name_a_known_upstream(
    tmp_path: Path, upstreams: str, expected: str
) -> None:
    """A relay route naming a missing [upstream.NAME] stops start-up with the key named and
    the upstreams the file defines listed."""
    route = "[[route]]\nmatch = '*'\naction = 'relay'\nupstream = 'nosuch'\n"
    path = write(tmp_path, route + upstreams)
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert str(raised.value) == f"{path}: route[0].upstream: expected {expected}, got 'nosuch'"


@pytest.mark.parametrize("section", ["web", "auth"])
@pytest.mark.parametrize("bad", ["$2b$12$notscrypt", "$scrypt$ln=99,r=8,p=1$YQ$Yg", 123454321])
def test_a_bad_user_entry_names_the_user_and_shows_no_hash(
    tmp_path: Path, section: str, bad: object
) -> None:
    """A bad [web.users] or [auth.users] entry names the user and the hash format, and
    repeats none of the table's hashes."""
    good = "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    bad_value = f'"{bad}"' if isinstance(bad, str) else bad
    path = write(tmp_path, f'[{section}.users]\nalice = "{good}"\nbob = {bad_value}\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    message = str(raised.value)
    assert "bob" in message and ", got" not in message, message
    assert str(bad) not in message and good not in message, message
    if isinstance(bad, str):
        assert "$scrypt$ln=14,r=8,p=1$" in message


def test_shipped_examples_show_the_hash_format_relay_hash_password_prints() -> None:
    """Every scrypt hash shown in relay.toml and the docs starts as `relay hash-password`'s
    output does."""
    printed = passwords.hash_password("x", log2_n=1)
    prefix = printed[: printed.index("$", len("$scrypt$"))].replace("ln=1", "ln=14")
    for path in [ROOT / "relay.toml", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        shown = re.findall(r"\S*scrypt\$\S*", path.read_text(encoding="utf-8"))
        hashes = [h.strip("`\"'") for h in shown if "ln=…" not in h]
        assert all(h.startswith(prefix + "$") for h in hashes), (path.name, hashes)


def _settings(cls: type, prefix: str) -> list[tuple[str, str]]:
    """(section, key) of every setting declared in a config dataclass, nested ones included."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        inner = next((a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)), None)
        if inner is not None:
            out += _settings(typing.cast(type, inner), f.name)
        else:
            assert f.metadata.get("help"), f"{prefix}.{f.name} has no help text"
            out.append((prefix, f.name))
    return out


def test_checks_section_off_by_default_and_read_from_the_file(tmp_path: Path) -> None:
    """[checks]: no spamd and no private link targets by default; the file sets them."""
    default = load_config(None, env={}).checks
    assert (default.spamassassin, default.link_check_allow_private) == ("", False)
    assert (default.link_check_timeout, default.link_check_concurrency) == (10.0, 5)
    text = (
        "[checks]\nspamassassin = '127.0.0.1:783'\nspamassassin_timeout = 2.5\n"
        "link_check_allow_private = true\nlink_check_timeout = 4\nlink_check_concurrency = 3\n"
    )
    checks = load_config(write(tmp_path, text), env={}).checks
    assert (checks.spamassassin, checks.spamassassin_timeout) == ("127.0.0.1:783", 2.5)
    assert checks.link_check_allow_private is True
    assert (checks.link_check_timeout, checks.link_check_concurrency) == (4.0, 3)


def test_relay_toml_documents_every_key() -> None:
    """Every key declared in relay/config/ appears, with its help text, in relay.toml."""
    text = (ROOT / "relay.toml").read_text(encoding="utf-8")
    missing = [
        f"{section}.{key}"
        for section, key in _settings(Config, "")
        if not re.search(rf"^#? ?{re.escape(key)} = ", text, re.MULTILINE)
        and not re.search(rf"^#? ?\[{re.escape(section)}\.{re.escape(key)}\]", text, re.MULTILINE)
    ]
    assert not missing, f"relay.toml does not document: {missing}"


def test_container_config_binds_every_interface_and_keeps_data_in_volume() -> None:
    """docker/relay.toml is valid and listens on 0.0.0.0 with the database under /data."""
    config = load_config(ROOT / "docker" / "relay.toml", env={})
    assert [listener.host for listener in config.listener] == ["0.0.0.0"]
    assert config.web.host == "0.0.0.0"
    assert config.storage.url == "sqlite+aiosqlite:////data/relay.db"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "USER relay" in dockerfile and "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


DATABASE_FORMS = [
    ("relay.db", "sqlite+aiosqlite:///relay.db"),
    ("./data/relay.db", "sqlite+aiosqlite:///./data/relay.db"),
    ("/var/lib/relay/relay.db", "sqlite+aiosqlite:////var/lib/relay/relay.db"),
    ("sqlite:///relay.db", "sqlite+aiosqlite:///relay.db"),
    ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
    ("sqlite+aiosqlite:///relay.db", "sqlite+aiosqlite:///relay.db"),
    ("postgresql://relay@127.0.0.1/mail", "postgresql+asyncpg://relay@127.0.0.1/mail"),
    ("postgres://relay:pw@db.test:5432/mail", "postgresql+asyncpg://relay:pw@db.test:5432/mail"),
    ("postgresql+asyncpg://relay@127.0.0.1/mail", "postgresql+asyncpg://relay@127.0.0.1/mail"),
    ("mysql://relay:pw@127.0.0.1/mail", "mysql+asyncmy://relay:pw@127.0.0.1/mail"),
    ("mariadb://relay@db.test:3306/mail", "mysql+asyncmy://relay@db.test:3306/mail"),
    ("mysql+aiomysql://relay@127.0.0.1/mail", "mysql+asyncmy://relay@127.0.0.1/mail"),
    ("MariaDB+asyncmy://relay@127.0.0.1/mail", "mysql+asyncmy://relay@127.0.0.1/mail"),
]


@pytest.mark.parametrize(("typed", "url"), DATABASE_FORMS)
def test_database_as_people_type_it_maps_to_the_async_drivers(
    tmp_path: Path, typed: str, url: str
) -> None:
    """[storage] url, RELAY_DATABASE_URL and --db accept a file, sqlite://, postgres(ql)://,
    mysql:// and mariadb:// and keep the async drivers' URL."""
    path = write(tmp_path, f"[storage]\nurl = {typed!r}\n")
    assert load_config(path, env={}).storage.url == url
    assert load_config(None, env={"RELAY_DATABASE_URL": typed}).storage.url == url
    assert with_overrides(load_config(None, env={}), db=typed).storage.url == url


ACCEPTED_FORMS = ("relay.db", "./data/relay.db", "sqlite:///relay.db", "sqlite:////abs/path.db",
                  "postgresql://", "postgres://", "mysql://", "mariadb://")  # fmt: skip


@pytest.mark.parametrize(
    "typed",
    ["oracle://u@h/db", "sqlite://relay.db", "sqlite://", "sqlite:///:memory:",
     "postgresql+psycopg://u@h/db", "localhost:5432/mail", ""],
)  # fmt: skip
def test_any_other_database_gets_one_line_listing_the_accepted_forms(
    tmp_path: Path, typed: str
) -> None:
    """`relay check-config` and `relay stats --db` answer an unknown form with exit 2 and one
    line that lists every accepted form."""
    path = write(tmp_path, f"[storage]\nurl = {typed!r}\n")
    for args in (["check-config", str(path)], ["stats", "--db", typed]):
        result = subprocess.run(
            [sys.executable, "-m", "relay", *args], capture_output=True, text=True, check=False
        )
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.splitlines()
        assert all(form in line for form in ACCEPTED_FORMS), line


@pytest.mark.parametrize(
    ("typed", "made"),
    [
        ("relay.db", "relay.db"),
        ("./data/relay.db", "data/relay.db"),
        ("sqlite:///relay.db", "relay.db"),
        ("sqlite:///{tmp}/abs.db", "abs.db"),
    ],
)
def test_db_upgrade_makes_the_sqlite_file_the_short_form_names(
    tmp_path: Path, typed: str, made: str
) -> None:
    """`relay db upgrade --db FORM` run in a directory makes its schema in the file meant
    (and the file's folder when there is none yet)."""
    result = subprocess.run(
        [sys.executable, "-m", "relay", "db", "upgrade", "--db", typed.format(tmp=tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.db")] == [made]


def test_postgres_url_as_libpq_spells_it_opens_the_database(pg_url: str) -> None:
    """A postgres:// URL (libpq's and Heroku's spelling) reaches PostgreSQL through asyncpg."""
    typed = pg_url.replace("postgresql+asyncpg://", "postgres://", 1)
    result = subprocess.run(
        [sys.executable, "-m", "relay", "db", "upgrade", "--db", typed],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "schema" in result.stdout
