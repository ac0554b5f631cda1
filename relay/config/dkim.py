"""[dkim."DOMAIN"]: the key that signs relayed mail whose From address is at DOMAIN.

The key file is read when the configuration is loaded, so that a missing, unreadable or
malformed key stops start-up (and `relay check-config`) with an error naming the table,
not the first delivery. `cryptography` is imported only when a [dkim] table exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.config.settings import setting
from relay.errors import ConfigError

MIN_BITS = 1024
"""The smallest RSA key verifiers accept (RFC 8301); 2048 is what `relay dkim keygen` makes."""
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")


def check_selector(value: str) -> str | None:
    """A check: a DKIM selector, one or more DNS labels (RFC 6376 3.1)."""
    return None if _SELECTOR.fullmatch(value) else "a selector of letters, digits, - and ."


@dataclass(frozen=True)
class DkimConfig:
    """[dkim."DOMAIN"]: sign relayed mail whose From domain is DOMAIN, with this key."""

    selector: str = setting(
        "",
        "The selector: the key's DNS name is SELECTOR._domainkey.DOMAIN (TXT).",
        check_selector,
    )
    key_file: str = setting(
        "",
        "PEM file of the RSA private key (`relay dkim keygen DOMAIN SELECTOR` writes one);"
        " read at start.",
    )
    key: bytes = field(default=b"", repr=False, metadata={"internal": True})


def load_keys(dkim: Mapping[str, DkimConfig], source: str) -> dict[str, DkimConfig]:
    """Each table of `dkim` checked and given its key (PKCS#1 PEM, as dkimpy reads it),
    by domain in lower case; ConfigError naming the table when a key cannot be used."""
    loaded = {}
    for domain, table in dkim.items():
        name = domain.lower().rstrip(".")
        key = f'dkim."{domain}"'
        if not table.selector:
            raise ConfigError(source, f"{key}.selector", "a selector")
        if not table.key_file:
            raise ConfigError(source, f"{key}.key_file", "the path of a PEM private key file")
        pem = _read_key(table.key_file, f"{key}.key_file", source)
        loaded[name] = dataclasses.replace(table, key=pem)
    return loaded


def _read_key(path: str, key: str, source: str) -> bytes:
    """The RSA private key in `path` as PKCS#1 PEM; ConfigError when it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(source, key, "a readable key file", f"{path}: {exc.strerror}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            source, key, "an unencrypted PEM private key (relay dkim keygen writes one)", path
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ConfigError(source, key, "an RSA key (DKIM's rsa-sha256)", path)
    if private.key_size < MIN_BITS:
        raise ConfigError(
            source, key, f"an RSA key of {MIN_BITS} bits or more", f"{private.key_size} bits"
        )
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
