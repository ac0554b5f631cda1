"""relay.toml and RELAY_* environment variables, read once into one frozen `Config`.

Every setting is declared here, once, with its default and its meaning (`setting(...)`);
relay.toml carries the same words. The loader (relay/settings.py) is driven by the
dataclasses' type hints: an unknown key, a value of the wrong type or a bad value raises
`ConfigError` naming the file, the key and what was expected. Secrets such as upstream
passwords are read from the environment here, at load time, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from relay import passwords
from relay.dburl import ACCEPTED, database_url
from relay.durations import check_duration, parse_duration
from relay.errors import ConfigError
from relay.settings import build, setting


def split_hostport(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (or "[v6]:PORT") into host and port; raises ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return host, port


def _check_hostport(value: str) -> str | None:
    try:
        split_hostport(value)
    except ValueError:
        return "HOST:PORT with a port from 0 to 65535"
    return None


def _positive(value: float) -> str | None:
    return None if value > 0 else "a number greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "a number of 0 or more"


def _check_url(value: str) -> str | None:
    try:
        database_url(value)
    except ValueError:
        return ACCEPTED
    return None


def _check_networks(value: tuple[str, ...]) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f'a list of networks such as "127.0.0.0/8" (bad: {item!r})'
    return None


Role = Literal["smtp", "web", "delivery"]
ROLES: tuple[Role, ...] = ("smtp", "web", "delivery")


def _check_roles(value: tuple[str, ...]) -> str | None:
    if not value or len(set(value)) != len(value):
        return "a non-empty list of roles, each once: smtp, web, delivery"
    return None


MAX_SMTP_PROCESSES = 64


def _check_processes(value: int) -> str | None:
    if 1 <= value <= MAX_SMTP_PROCESSES:
        return None
    return f"a whole number from 1 to {MAX_SMTP_PROCESSES}"


class _Bound:
    """The host and port of a section's `address` ("HOST:PORT", checked at load)."""

    address: str

    @property
    def host(self) -> str:
        """The host part of `address`."""
        return split_hostport(self.address)[0]

    @property
    def port(self) -> int:
        """The port part of `address`."""
        return split_hostport(self.address)[1]


@dataclass(frozen=True)
class ServerConfig:
    """[server]: settings of the whole process."""

    hostname: str = setting(
        "", "Name in the SMTP banner and our Received header; empty: this machine's host name."
    )
    shutdown_timeout: float = setting(
        10.0,
        "Seconds that SMTP sessions and deliveries in flight get to finish after SIGTERM/SIGINT"
        " (unfinished deliveries are queued again).",
        _non_negative,
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "Least severe log level that is printed."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = setting(
        "auto",
        "Event loop: auto uses uvloop when it is installed (pip install 'relay[speed]'),"
        " else asyncio's own; uvloop fails at start when it is missing.",
    )
    roles: tuple[Role, ...] = setting(
        ROLES,
        "What this process runs: smtp (the listeners), web (the UI and API), delivery (the"
        " queue worker); split them over processes that share one PostgreSQL database to"
        " scale ingest and delivery apart. `relay serve --role` overrides it.",
        _check_roles,
    )
    smtp_processes: int = setting(
        1,
        "Processes that accept SMTP on the listeners' ports (SO_REUSEPORT, Linux): this one"
        " and smtp_processes - 1 helpers it starts, which run only the listeners and store"
        " what they accept; the web UI and delivery stay here. More than 1 puts more cores"
        " to work on ingest; every listener then needs a fixed port.",
        _check_processes,
    )
    smtp_in_primary: bool = setting(
        True,
        "With smtp_processes above 1: whether this process accepts SMTP too (true), or"
        " leaves it all to its helpers and keeps its core for delivery and the web UI"
        " (false: for relay mode under load).",
    )

    @property
    def host_name(self) -> str:
        """The configured host name, or this machine's (without a slow FQDN lookup)."""
        return self.hostname or _machine_name()


@functools.cache
def _machine_name() -> str:
    """This machine's host name, asked once (every message's Received: header uses it)."""
    return socket.gethostname() or "localhost"


@dataclass(frozen=True)
class ListenerConfig(_Bound):
    """[[listener]]: one SMTP port that accepts mail."""

    name: str = setting("smtp", "Name shown in logs, on stored messages and in the UI.")
    address: str = setting("127.0.0.1:1025", "HOST:PORT to listen on.", _check_hostport)
    kind: Literal["smtp", "submission", "smtps"] = setting(
        "smtp",
        "smtp: port-25 style, relays only for trusted or authenticated clients;"
        " submission: port 587, STARTTLS then AUTH before MAIL (RFC 6409);"
        " smtps: port 465, TLS from the first byte (RFC 8314).",
    )
    starttls: Literal["auto", "off", "optional", "required"] = setting(
        "auto",
        "STARTTLS: off, optional (offered) or required (before any mail command);"
        " auto: required on submission, off on smtps (already TLS), and on smtp optional"
        " when a certificate is configured, else off.",
    )
    auth: Literal["auto", "off", "optional", "required"] = setting(
        "auto",
        "AUTH PLAIN/LOGIN against [auth.users]: off, optional or required (before MAIL);"
        " auto: required on submission and smtps, and on smtp optional when users exist"
        " and TLS is offered (or allow_insecure_auth), else off.",
    )
    allow_insecure_auth: bool = setting(
        False, "Allow AUTH without TLS (else 538 5.7.11); for trusted test networks only."
    )
    cert: str = setting(
        "", "PEM certificate (chain) file for TLS; empty: [tls] cert, else a development one."
    )
    key: str = setting("", "PEM private key file of `cert`; empty: [tls] key.")
    max_message_size: int = setting(
        33554432, "Largest message accepted, in bytes (advertised as SIZE).", _positive
    )
    max_recipients: int = setting(
        1000, "Most recipients of one message; more get 452 4.5.3.", _positive
    )
    max_connections: int = setting(
        100, "Most SMTP sessions at once; the excess get 421 4.7.0 and are closed.", _positive
    )
    max_line_length: int = setting(
        65536,
        "Longest line of a message accepted, in bytes without CRLF (RFC 5321 says 998; real"
        " applications send longer); a longer one gets 500 5.5.2.",
        _positive,
    )
    command_timeout: float = setting(
        300.0, "Seconds to wait for the next command before 421 4.4.2 and closing.", _positive
    )
    data_timeout: float = setting(
        300.0, "Seconds to wait for more message data during DATA before 421 4.4.2.", _positive
    )
    trusted_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"),
        "Client networks allowed to relay without AUTH.",
        _check_networks,
    )
    reuse_port: bool = setting(
        False,
        "Share this address with other relay processes on this host (SO_REUSEPORT, Linux):"
        " the kernel spreads new connections among them.",
    )

    @property
    def implicit_tls(self) -> bool:
        """TLS from the first byte (an smtps listener)."""
        return self.kind == "smtps"

    @property
    def uses_tls(self) -> bool:
        """Whether this listener needs a certificate (implicit TLS or STARTTLS offered)."""
        return self.implicit_tls or self.starttls in ("optional", "required")


@dataclass(frozen=True)
class TLSConfig:
    """[tls]: the certificate listeners use unless they name their own."""

    cert: str = setting(
        "",
        "PEM certificate (chain) file for every TLS listener without its own; empty: a"
        " self-signed development certificate, made on first start.",
    )
    key: str = setting("", "PEM private key file of `cert`.")
    dev_cert_dir: str = setting(
        "",
        "Directory of the development certificate; empty: relay-tls/ beside the SQLite"
        " database (with PostgreSQL, beside the config file).",
    )


def _check_users(value: Mapping[str, str]) -> str | None:
    for name, hashed in value.items():
        if not name or ":" in name:
            return f"user names without a colon (bad: {name!r})"
        try:
            passwords.parse(hashed)
        except ValueError as exc:
            return (
                f"a password hash as `relay hash-password` prints it ({passwords.SHAPE})"
                f" for user {name!r} ({exc})"
            )
    return None


@dataclass(frozen=True)
class AuthConfig:
    """[auth]: SMTP AUTH users and how failed attempts are slowed down."""

    users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={
            "help": "[auth.users]: user name = password hash from `relay hash-password`.",
            "check": _check_users,
            "secret": False,
            "quiet": True,  # an error names the user, never repeats the table of hashes
        },
    )
    failure_delay: float = setting(
        1.0,
        "Seconds before answering a failed AUTH; doubles with each further failure"
        " from the same address.",
        _non_negative,
    )
    max_failure_delay: float = setting(
        30.0, "Longest wait before answering a failed AUTH, in seconds.", _non_negative
    )


@dataclass(frozen=True)
class WebConfig(_Bound):
    """[web]: the web UI and API."""

    address: str = setting("127.0.0.1:8025", "HOST:PORT of the web UI and API.", _check_hostport)
    page_size: int = setting(50, "Messages per page in the list.", _positive)
    users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={
            "help": "[web.users] NAME = HASH: people who may use the web UI (HTTP basic auth);"
            " HASH from `relay hash-password`. Empty with no token: no login asked.",
            "check": _check_users,
            "secret": False,
            "quiet": True,  # an error names the user, never repeats the table of hashes
        },
    )
    token: str = setting(
        "",
        "A bearer token that also grants access (Authorization: Bearer TOKEN), for scripts;"
        " RELAY_WEB_TOKEN overrides it. Empty: none.",
        secret=True,
    )
    secret: str = setting(
        "",
        "Key that signs the forms' CSRF tokens; give every relay behind one web address the"
        " same one (RELAY_WEB_SECRET overrides it). Empty: a random key per process.",
        secret=True,
    )
    reuse_port: bool = setting(
        False,
        "Share the web address with other relay processes on this host (SO_REUSEPORT).",
    )

    @property
    def auth_required(self) -> bool:
        """True when the web UI asks who is there."""
        return bool(self.users or self.token)


@dataclass(frozen=True)
class StorageConfig:
    """[storage]: where messages and the queue are kept."""

    url: str = setting(
        "sqlite+aiosqlite:///relay.db",
        "Database URL (SQLite file or PostgreSQL); RELAY_DATABASE_URL overrides it.",
        _check_url,
        convert=database_url,
    )
    sqlite_synchronous: Literal["full", "normal"] = setting(
        "full",
        "SQLite fsync policy: full survives a power cut (the promise of a 250); normal is faster"
        " and may lose the last commits on power loss (never on a process crash).",
    )
    busy_timeout: float = setting(
        5.0, "Seconds a SQLite write waits for another process's lock before failing.", _positive
    )
    max_messages: int = setting(
        0,
        "Retention: keep at most this many messages, deleting the oldest captured, delivered,"
        " failed or cancelled ones beyond it (never mail still queued, deferred, held or"
        " being sent); 0: no limit.",
        _non_negative,
    )
    max_age: str = setting(
        "",
        "Retention: delete captured, delivered, failed or cancelled mail older than this:"
        ' "7d", "12h", "30m", "45s" or seconds ("3600"); "": keep it forever.',
        check_duration,
    )
    prune_interval: float = setting(
        60.0, "Seconds between two retention runs (when max_messages or max_age is set).", _positive
    )

    @property
    def max_age_seconds(self) -> float:
        """`max_age` in seconds; 0 when mail is kept forever."""
        return parse_duration(self.max_age) if self.max_age else 0.0

    @property
    def retention(self) -> bool:
        """Whether old mail is pruned at all."""
        return self.max_messages > 0 or self.max_age_seconds > 0

    auto_migrate: bool = setting(
        False,
        "Upgrade an out-of-date database schema at start; false: relay stops and asks for"
        " `relay db upgrade`. An empty database always gets the schema at first start.",
    )
    pool_size: int = setting(
        10,
        "PostgreSQL: connections each relay process keeps open; bursts may open as many"
        " again, and one more listens for other processes' changes.",
        _positive,
    )


def _check_pattern(value: str) -> str | None:
    if not value or value.count("@") > 1 or any(c.isspace() for c in value):
        return "a domain (example.com, *.example.com, *) or an address pattern (*@example.com)"
    return None


@dataclass(frozen=True)
class RouteConfig:
    """[[route]]: what happens to recipients that match; the first matching rule wins."""

    match: str = setting(
        "*",
        "Recipient domain (example.com, *.example.com, *) or full-address pattern"
        " (*@example.com, ops-*@example.com); case-insensitive.",
        _check_pattern,
    )
    action: Literal["relay", "capture", "reject"] = setting(
        "capture", "relay: deliver upstream; capture: keep; reject: 550 5.7.1 at RCPT."
    )
    upstream: str = setting(
        "", 'With action = relay: the name of an [upstream.NAME] table, or "mx".'
    )


TlsMode = Literal["starttls", "implicit", "opportunistic", "none"]
TlsSetting = Literal["auto", "starttls", "implicit", "opportunistic", "none"]
_TLS_HELP = (
    "auto: opportunistic without a username, starttls with one (a password never crosses"
    " in clear); starttls: require STARTTLS; implicit: TLS from the first byte (port 465);"
    " opportunistic: STARTTLS when offered, plain text otherwise; none: never TLS."
)


def tls_mode(tls: TlsSetting, username: str) -> TlsMode:
    """The TLS a connection uses: "auto" is opportunistic, or starttls when it logs in."""
    if tls != "auto":
        return tls
    return "starttls" if username else "opportunistic"


def _fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "a fraction from 0 up to (not including) 1"


def _check_schedule(value: tuple[float, ...]) -> str | None:
    if not value or any(v <= 0 for v in value):
        return "a non-empty list of seconds, each greater than 0"
    return None


@dataclass(frozen=True)
class ConnectionSettings:
    """How connections to one destination are made and pooled (shared by upstreams and MX)."""

    tls: Literal["auto", "starttls", "implicit", "opportunistic", "none"] = setting(
        "auto", _TLS_HELP
    )
    verify: bool = setting(
        True, "Check the server's certificate and host name (TLS); false accepts any."
    )
    ca_file: str = setting(
        "", "PEM file of CA certificates to verify the server with; empty: the system's."
    )
    max_connections: int = setting(
        4, "Most connections open at once to this destination.", _positive
    )
    max_messages_per_connection: int = setting(
        100,
        "Messages sent over one connection before it is closed and a new one opened.",
        _positive,
    )
    max_recipients: int = setting(
        100, "Most recipients in one SMTP transaction; more are sent in further ones.", _positive
    )
    idle_timeout: float = setting(
        30.0, "Seconds an unused connection stays open for reuse before it is closed.", _positive
    )
    connect_timeout: float = setting(
        30.0,
        "Seconds to connect and get the greeting (and finish TLS) before giving up.",
        _positive,
    )
    command_timeout: float = setting(
        300.0, "Seconds to wait for the reply to one SMTP command, DATA included.", _positive
    )


@dataclass(frozen=True)
class UpstreamConfig(ConnectionSettings):
    """[upstream.NAME]: an SMTP server that relayed mail is handed to."""

    host: str = setting("127.0.0.1", "Host name or address of the upstream.")
    port: int = setting(25, "Port of the upstream.", _positive)
    username: str = setting("", "User name for SMTP AUTH; empty: no AUTH.")
    password_env: str = setting(
        "", "Name of the environment variable that holds the AUTH password (read at start)."
    )
    password: str = field(default="", repr=False, metadata={"internal": True})


@dataclass(frozen=True)
class MxConfig(ConnectionSettings):
    """[mx]: direct delivery to the recipient domain's MX hosts (routes with upstream = "mx")."""

    port: int = setting(25, "Port of every MX host.", _positive)
    tls: Literal["auto", "starttls", "implicit", "opportunistic", "none"] = setting(
        "opportunistic", _TLS_HELP
    )
    verify: bool = setting(
        False,
        "Check MX certificates and host names; off by default as for opportunistic TLS"
        " (RFC 7435): encrypted beats plain text even unauthenticated.",
    )


@dataclass(frozen=True)
class DeliveryConfig:
    """[delivery]: the queue worker, retries and bounces."""

    retry_schedule: tuple[float, ...] = setting(
        (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0),
        "Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats.",
        _check_schedule,
    )
    retry_jitter: float = setting(
        0.1,
        "Each wait is moved at random by up to this fraction, so that retries spread out.",
        _fraction,
    )
    max_age: float = setting(
        432000.0,
        "Seconds after receipt when a message that still cannot be delivered fails"
        " (5 days, RFC 5321 4.5.4.1); the last reply is kept.",
        _positive,
    )
    lease: float = setting(
        300.0,
        "Seconds a worker holds the recipients it is sending, renewed while it runs; a lease"
        " that lapses (a killed process) is taken up again.",
        _positive,
    )
    poll_interval: float = setting(
        15.0,
        "Fallback: most seconds between looks at the queue when nothing wakes the worker.",
        _positive,
    )
    batch_size: int = setting(100, "Recipients claimed from the queue at a time.", _positive)
    max_in_flight: int = setting(
        1000,
        "Most recipients claimed and not finished at once, over all destinations (each"
        " destination's max_connections caps its own connections).",
        _positive,
    )
    dsn: bool = setting(
        False,
        "Send a delivery status notification (RFC 3464) to the envelope sender when a"
        " recipient fails for good; never to a null sender.",
    )


def _check_optional_hostport(value: str) -> str | None:
    return None if not value else _check_hostport(value)


@dataclass(frozen=True)
class ChecksConfig:
    """[checks]: the spam, link and HTML checks run on a message when asked."""

    spamassassin: str = setting(
        "",
        "SpamAssassin's spamd at HOST:PORT for the spam check; empty: no spam check.",
        _check_optional_hostport,
    )
    spamassassin_timeout: float = setting(
        10.0, "Seconds the spam check waits for spamd before it reports an error.", _positive
    )
    link_check_allow_private: bool = setting(
        False,
        "Let the link check reach private, loopback, link-local and other non-public"
        " addresses; off, such links are refused (no request forgery through relay).",
    )
    link_check_timeout: float = setting(
        10.0, "Seconds the link check gives each link, redirects included.", _positive
    )
    link_check_concurrency: int = setting(
        5, "Most links the link check requests at once.", _positive
    )


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


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
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


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (None: built-in defaults) and the environment into a frozen Config."""
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, "(file)", "a readable file", "not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    if isinstance(data.get("listener"), dict):
        raise ConfigError(source, "listener", "[[listener]] tables (an array of tables)")
    _apply_env(data, env)
    config = build(Config, data, source)
    for i, rule in enumerate(config.route):
        if (
            rule.action == "relay"
            and rule.upstream != "mx"
            and rule.upstream not in config.upstream
        ):
            raise ConfigError(
                source, f"route[{i}].upstream", _upstream_names(config), rule.upstream
            )
        if rule.action != "relay" and rule.upstream:
            raise ConfigError(source, f"route[{i}].upstream", "no upstream unless action = relay")
    listener_names = [listener.name for listener in config.listener]
    if len(set(listener_names)) != len(listener_names):
        raise ConfigError(
            source, "listener.name", "a different name for each listener", listener_names
        )
    upstreams = {
        name: _upstream_secrets(name, upstream, env, source)
        for name, upstream in config.upstream.items()
    }
    _check_ca_file("mx.ca_file", config.mx.ca_file, source)
    config = dataclasses.replace(config, upstream=types.MappingProxyType(upstreams))
    return resolved(dataclasses.replace(config, source=source))


def _upstream_names(config: Config) -> str:
    """What a relay route may name: "mx" or one of the [upstream.NAME] tables defined."""
    if not config.upstream:
        return '"mx", or the NAME of an [upstream.NAME] table (this file defines none)'
    names = ", ".join(f'"{name}"' for name in sorted(config.upstream))
    return f'"mx" or a defined upstream: {names}'


def _check_ca_file(key: str, path: str, source: str) -> None:
    if path and not os.path.isfile(path):
        raise ConfigError(source, key, "a readable PEM file of CA certificates", path)


def _upstream_secrets(
    name: str, upstream: UpstreamConfig, env: Mapping[str, str], source: str
) -> UpstreamConfig:
    """Check one [upstream.NAME] and fill in its password from the environment."""
    key = f"upstream.{name}"
    if name == "mx":
        raise ConfigError(source, key, 'another name: "mx" means MX delivery in routes')
    _check_ca_file(f"{key}.ca_file", upstream.ca_file, source)
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


def config_warnings(config: Config) -> list[str]:
    """What is valid but unwise in `config`, one sentence each (check-config and serve say
    them): an upstream that sends its password in clear."""
    return [
        f'{config.source}: upstream.{name}.tls: "none" sends the password of user'
        f' {upstream.username!r} in clear; use "starttls" or "implicit"'
        for name, upstream in config.upstream.items()
        if upstream.username and upstream.tls == "none"
    ]


def _resolve_listener(index: int, lc: ListenerConfig, config: Config) -> ListenerConfig:
    """`lc` with its "auto" switches decided by kind; raises ConfigError on a useless mix."""
    key = f"listener[{index}]"
    has_cert = bool(lc.cert or config.tls.cert)
    starttls = lc.starttls
    if starttls == "auto":
        starttls = "optional" if has_cert else "off"
        if lc.kind != "smtp":
            starttls = "required" if lc.kind == "submission" else "off"
    elif lc.kind == "smtps" and starttls != "off":
        raise ConfigError(
            config.source, f"{key}.starttls", '"off" or "auto" on an smtps listener', starttls
        )
    auth = lc.auth
    if auth == "auto":
        usable = starttls != "off" or lc.allow_insecure_auth
        auth = "optional" if config.auth.users and usable else "off"
        if lc.kind in ("submission", "smtps"):
            auth = "required"
    if auth != "off" and not config.auth.users:
        raise ConfigError(
            config.source,
            f"{key}.auth",
            f"users in [auth.users] (`relay hash-password` makes a hash) for auth = {auth!r}"
            ' on this listener, or auth = "off"',
        )
    if auth != "off" and starttls == "off" and lc.kind != "smtps" and not lc.allow_insecure_auth:
        raise ConfigError(
            config.source,
            f"{key}.auth",
            'TLS for AUTH: starttls = "optional" or "required", allow_insecure_auth ='
            ' true, or auth = "off"',
        )
    if bool(lc.cert) != bool(lc.key):
        raise ConfigError(config.source, f"{key}.cert", "both cert and key, or neither")
    return dataclasses.replace(lc, starttls=starttls, auth=auth)


def resolved(config: Config) -> Config:
    """`config` with every listener's "auto" settings decided (idempotent)."""
    if bool(config.tls.cert) != bool(config.tls.key):
        raise ConfigError(config.source, "tls.cert", "both cert and key, or neither")
    listeners = tuple(_resolve_listener(i, lc, config) for i, lc in enumerate(config.listener))
    server = config.server
    if not server.smtp_in_primary and server.smtp_processes == 1 and "smtp" in server.roles:
        raise ConfigError(
            config.source,
            "server.smtp_in_primary",
            "true while smtp_processes is 1 (no process would accept SMTP)",
            "false",
        )
    if server.smtp_processes > 1 and "smtp" in server.roles:
        for i, lc in enumerate(listeners):
            if lc.port == 0:
                raise ConfigError(
                    config.source,
                    f"listener[{i}].address",
                    "a fixed port (not 0) when [server] smtp_processes is more than 1",
                    lc.address,
                )
        # Every process binds the same ports: the kernel spreads connections among them.
        listeners = tuple(dataclasses.replace(lc, reuse_port=True) for lc in listeners)
    return dataclasses.replace(config, listener=listeners)


def parse_roles(value: str) -> tuple[Role, ...]:
    """ "smtp,delivery" → ("smtp", "delivery"); raises ValueError naming a bad role."""
    roles = tuple(part.strip() for part in value.split(",") if part.strip())
    for role in roles:
        if role not in ROLES:
            raise ValueError(role)
    if _check_roles(roles):
        raise ValueError(value)
    return typing.cast(tuple[Role, ...], roles)


def with_overrides(
    config: Config,
    smtp: str | None = None,
    web: str | None = None,
    db: str | None = None,
    roles: str | None = None,
) -> Config:
    """Apply the `relay serve` flags, which win over the file and the environment."""
    source = "command line"
    if roles is not None:
        try:
            chosen = parse_roles(roles)
        except ValueError:
            raise ConfigError(
                source, "--role", "roles among smtp, web, delivery, each once", roles
            ) from None
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, roles=chosen)
        )
    if smtp is not None:
        if problem := _check_hostport(smtp):
            raise ConfigError(source, "--smtp", problem, smtp)
        # One plain listener: the first one's settings if it is plain, else the defaults.
        first = config.listener[0] if config.listener else ListenerConfig()
        base = first if first.kind == "smtp" else ListenerConfig()
        config = dataclasses.replace(config, listener=(dataclasses.replace(base, address=smtp),))
    if web is not None:
        if problem := _check_hostport(web):
            raise ConfigError(source, "--web", problem, web)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, address=web))
    if db is not None:
        if problem := _check_url(db):
            raise ConfigError(source, "--db", problem, db)
        storage = dataclasses.replace(config.storage, url=database_url(db))
        config = dataclasses.replace(config, storage=storage)
    return resolved(config)
