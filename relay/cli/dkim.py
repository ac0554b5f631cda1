"""`relay dkim keygen DOMAIN SELECTOR`: a DKIM signing key and the DNS record that
publishes it.

The key is RSA (2048 bits unless told), written as PEM to a new file that only its owner
may read (mode 0600; an existing file is never overwritten). The command prints the TXT
record to publish at SELECTOR._domainkey.DOMAIN (the public key, in strings of at most 255
characters as DNS wants them) and the `[dkim."DOMAIN"]` table that makes relay sign with
it. `cryptography` is imported inside the command.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
from pathlib import Path
from typing import Any

from relay.cli.output import EXIT_OK, EXIT_USAGE, fail, print_json
from relay.config.dkim import MIN_BITS, check_selector

DEFAULT_BITS = 2048
TXT_STRING = 255
"""The longest character string in a TXT record (RFC 1035 3.3)."""
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]+"
)


def record_name(domain: str, selector: str) -> str:
    """Where the public key is published: SELECTOR._domainkey.DOMAIN."""
    return f"{selector}._domainkey.{domain}"


def txt_value(public_der: bytes) -> str:
    """The record's text: version, key type and the public key (SubjectPublicKeyInfo)."""
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public_der).decode()}"


def zone_line(domain: str, selector: str, value: str) -> str:
    """The record as a zone file line, its text cut into strings DNS accepts."""
    parts = " ".join(f'"{value[i : i + TXT_STRING]}"' for i in range(0, len(value), TXT_STRING))
    return f"{record_name(domain, selector)}. IN TXT ( {parts} )"


def make_key(bits: int) -> tuple[bytes, bytes]:
    """A new RSA key: its PEM (PKCS#1, as dkimpy reads it) and its public key's DER."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, public


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file `path` readable by its owner alone (0600); its folder is
    made (0700) when missing. FileExistsError when the file exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
    finally:
        os.close(fd)


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new key for DOMAIN and SELECTOR; print its DNS record and config table."""
    domain = args.domain.lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        return fail(f"not a domain name: {args.domain!r}", EXIT_USAGE)
    if problem := check_selector(args.selector):
        return fail(f"selector: expected {problem}, got {args.selector!r}", EXIT_USAGE)
    if args.bits < MIN_BITS:
        return fail(f"--bits: at least {MIN_BITS}", EXIT_USAGE)
    path = Path(args.out or f"dkim/{domain}.{args.selector}.pem")
    pem, public = make_key(args.bits)
    try:
        write_private(path, pem)
    except FileExistsError:
        return fail(f"{path} exists: relay never overwrites a key (use --out)", EXIT_USAGE)
    except OSError as exc:
        return fail(f"cannot write {path}: {exc.strerror}", EXIT_USAGE)
    value = txt_value(public)
    if args.json:
        print_json(
            {
                "domain": domain,
                "selector": args.selector,
                "key_file": str(path),
                "bits": args.bits,
                "name": record_name(domain, args.selector),
                "txt": value,
            }
        )
        return EXIT_OK
    print(f"wrote {path} (RSA {args.bits} bits, mode 0600)\n")
    print("publish this DNS record:\n")
    print(zone_line(domain, args.selector, value))
    print("\nand sign with it in relay.toml:\n")
    print(f'[dkim."{domain}"]\nselector = "{args.selector}"\nkey_file = "{path}"')
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register `relay dkim keygen`."""
    dkim = sub.add_parser("dkim", help="DKIM signing keys: keygen")
    commands = dkim.add_subparsers(dest="dkim_command", required=True, metavar="COMMAND")
    keygen = commands.add_parser(
        "keygen",
        help="write an RSA key (mode 0600) and print its DNS TXT record and [dkim] table",
    )
    keygen.add_argument("domain", metavar="DOMAIN", help="the From domain to sign for")
    keygen.add_argument("selector", metavar="SELECTOR", help="the key's name, e.g. s1")
    keygen.add_argument(
        "--out", metavar="FILE", help="key file (default: dkim/DOMAIN.SELECTOR.pem)"
    )
    keygen.add_argument(
        "--bits", type=int, default=DEFAULT_BITS, help=f"key size (default {DEFAULT_BITS})"
    )
    keygen.add_argument("--json", action="store_true", help="print JSON for scripts")
    keygen.set_defaults(func=cmd_keygen)
