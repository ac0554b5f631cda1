"""`relay check-config` and `relay hash-password`: checking a configuration file and
making the password hashes it holds, without the server's libraries."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from relay import passwords
from relay.cli.output import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from relay.config import config_warnings, load_config
from relay.errors import ConfigError


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file: exit 0 when valid, 2 with the problem when not."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in config_warnings(config):
        print(f"relay: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: valid")
    return EXIT_OK


def _read_password() -> str | None:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("relay: the passwords differ", file=sys.stderr)
            return None
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Print a scrypt hash for [auth.users] of a password read from stdin or a prompt."""
    password = _read_password()
    if password is None:
        return EXIT_FAILURE
    if not password:
        print("relay: empty password", file=sys.stderr)
        return EXIT_USAGE
    print(passwords.hash_password(password))
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    """Register `relay check-config` and `relay hash-password`."""
    check = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 2 not)")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    hashpw = sub.add_parser(
        "hash-password",
        help="print a password hash for [auth.users] (the password is read from stdin"
        " or asked for, never taken from the command line)",
    )
    hashpw.set_defaults(func=cmd_hash_password)
