"""[[listener]], [tls] and [auth]: the SMTP ports that accept mail (and the POP3 ports that
serve it back), the certificate they use, and the users who may log in."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from relay.config.settings import setting
from relay.config.values import (
    Bound,
    check_hostport,
    check_networks,
    check_users,
    non_negative,
    positive,
)


@dataclass(frozen=True)
class ListenerConfig(Bound):
    """[[listener]]: one SMTP port that accepts mail, or one POP3 port that serves it."""

    name: str = setting("smtp", "Name shown in logs, on stored messages and in the UI.")
    address: str = setting("127.0.0.1:1025", "HOST:PORT to listen on.", check_hostport)
    kind: Literal["smtp", "submission", "smtps", "pop3", "pop3s"] = setting(
        "smtp",
        "smtp: port-25 style, relays only for trusted or authenticated clients;"
        " submission: port 587, STARTTLS then AUTH before MAIL (RFC 6409);"
        " smtps: port 465, TLS from the first byte (RFC 8314);"
        " pop3: port 110, mailboxes read over POP3 with STLS (RFC 1939, RFC 2595);"
        " pop3s: port 995, POP3 with TLS from the first byte.",
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
        False,
        "Allow AUTH without TLS (else 538 5.7.11; on POP3, USER/PASS and AUTH before STLS"
        " get -ERR); for trusted test networks only.",
    )
    cert: str = setting(
        "", "PEM certificate (chain) file for TLS; empty: [tls] cert, else a development one."
    )
    key: str = setting("", "PEM private key file of `cert`; empty: [tls] key.")
    max_message_size: int = setting(
        33554432, "Largest message accepted, in bytes (advertised as SIZE).", positive
    )
    max_recipients: int = setting(
        1000, "Most recipients of one message; more get 452 4.5.3.", positive
    )
    max_connections: int = setting(
        100,
        "Most sessions at once; the excess get 421 4.7.0 (POP3: -ERR [SYS/TEMP]) and are closed.",
        positive,
    )
    max_line_length: int = setting(
        65536,
        "Longest line of a message accepted, in bytes without CRLF (RFC 5321 says 998; real"
        " applications send longer); a longer one gets 500 5.5.2.",
        positive,
    )
    command_timeout: float = setting(
        300.0, "Seconds to wait for the next command before 421 4.4.2 and closing.", positive
    )
    data_timeout: float = setting(
        300.0, "Seconds to wait for more message data during DATA before 421 4.4.2.", positive
    )
    idle_timeout: float = setting(
        600.0,
        "POP3: seconds a session may stay silent before it is closed (RFC 1939 asks at"
        " least 600); deletions it marked are not made.",
        positive,
    )
    trusted_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"),
        "Client networks allowed to relay without AUTH.",
        check_networks,
    )
    reuse_port: bool = setting(
        False,
        "Share this address with other relay processes on this host (SO_REUSEPORT, Linux):"
        " the kernel spreads new connections among them.",
    )

    @property
    def is_pop3(self) -> bool:
        """Whether this listener serves mailboxes over POP3 (pop3 or pop3s)."""
        return self.kind in ("pop3", "pop3s")

    @property
    def implicit_tls(self) -> bool:
        """TLS from the first byte (an smtps or pop3s listener)."""
        return self.kind in ("smtps", "pop3s")

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


@dataclass(frozen=True)
class AuthConfig:
    """[auth]: SMTP AUTH and POP3 users and how failed attempts are slowed down."""

    users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={
            "help": "[auth.users]: user name = password hash from `relay hash-password`.",
            "check": check_users,
            "secret": False,
            "quiet": True,  # an error names the user, never repeats the table of hashes
        },
    )
    failure_delay: float = setting(
        1.0,
        "Seconds before answering a failed AUTH (SMTP) or POP3 login; doubles with each"
        " further failure from the same address, on any listener.",
        non_negative,
    )
    max_failure_delay: float = setting(
        30.0, "Longest wait before answering a failed AUTH, in seconds.", non_negative
    )
