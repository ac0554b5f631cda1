"""Password hashes for SMTP AUTH users: scrypt from hashlib, in a self-describing string.

The format follows the PHC string format: `$scrypt$ln=14,r=8,p=1$<salt>$<hash>`, salt and
hash in unpadded standard base64. `ln` is log2 of scrypt's cost N, so a hash made today
stays checkable after the defaults change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "$scrypt$"
LOG2_N = 14  # N = 16384: about 16 MiB and a few tens of ms per check
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_LOG2_N = 20  # refuse hashes that would take a gigabyte to check
SHAPE = f"{PREFIX}ln={LOG2_N},r={BLOCK_SIZE},p={PARALLELISM}$SALT$HASH"
"""What `hash_password` prints, for messages that say what a hash looks like."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: bytes, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=256 * r * (n + p + 2), dklen=length
    )


def hash_password(password: str, log2_n: int = LOG2_N) -> str:
    """A new salted scrypt hash of `password` in the `$scrypt$...` format."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password.encode("utf-8"), salt, log2_n, BLOCK_SIZE, PARALLELISM, HASH_BYTES)
    params = f"ln={log2_n},r={BLOCK_SIZE},p={PARALLELISM}"
    return f"{PREFIX}{params}${_b64(salt)}${_b64(digest)}"


def parse(hashed: str) -> tuple[int, int, int, bytes, bytes]:
    """Split a hash into (log2 N, r, p, salt, digest); raises ValueError when malformed."""
    if not hashed.startswith(PREFIX):
        raise ValueError("not a $scrypt$ hash")
    parts = hashed[len(PREFIX) :].split("$")
    if len(parts) != 3:
        raise ValueError("expected $scrypt$PARAMS$SALT$HASH")
    params = dict(item.partition("=")[::2] for item in parts[0].split(","))
    try:
        log2_n, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
        salt, digest = _unb64(parts[1]), _unb64(parts[2])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"bad scrypt parameters: {exc}") from None
    if not (1 <= log2_n <= MAX_LOG2_N and 1 <= r <= 64 and 1 <= p <= 16 and salt and digest):
        raise ValueError("scrypt parameters out of range")
    return log2_n, r, p, salt, digest


def verify(password: bytes, hashed: str) -> bool:
    """Whether `password` matches `hashed` (constant-time compare; False when malformed)."""
    try:
        log2_n, r, p, salt, digest = parse(hashed)
    except ValueError:
        return False
    candidate = _scrypt(password, salt, log2_n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest)


def is_hash(text: str) -> bool:
    """Whether `text` has the form of a hash made by `hash_password`."""
    try:
        parse(text)
    except ValueError:
        return False
    return True


def verify_password(password: str, hashed: str) -> bool:
    """`verify` for a password given as text (UTF-8)."""
    return verify(password.encode("utf-8"), hashed)
