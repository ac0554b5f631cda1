"""TLS for the listeners: one server context per certificate, TLS 1.2 or newer.

A listener uses its own `cert`/`key`, else [tls] `cert`/`key`, else the development
certificate, which is made on first start beside the database (see `dev_cert_dir`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from sqlalchemy.engine import make_url

from relay.config import Config
from relay.errors import StartupError

log = logging.getLogger(__name__)

DEV_CERT_DIR = "relay-tls"


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server-side context serving `cert` with `key`, refusing anything before TLS 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def dev_cert_dir(config: Config) -> Path:
    """Where the development certificate lives: [tls] dev_cert_dir, else beside the
    SQLite database, else beside the config file, else the current directory."""
    if config.tls.dev_cert_dir:
        return Path(config.tls.dev_cert_dir)
    url = make_url(config.storage.url)
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database).parent / DEV_CERT_DIR
    source = Path(config.source)
    if source.is_file():
        return source.parent / DEV_CERT_DIR
    return Path(DEV_CERT_DIR)


async def _dev_certificate(config: Config) -> tuple[str, str]:
    from relay.smtp import devcert  # `cryptography`, only for a listener that needs it

    directory = dev_cert_dir(config)
    try:
        cert, key, made = await asyncio.to_thread(
            devcert.ensure, directory, config.server.host_name
        )
        fingerprint = await asyncio.to_thread(devcert.fingerprint, cert)
    except OSError as exc:
        raise StartupError(
            f"cannot write the development TLS certificate in {directory}:"
            f" {exc.strerror or exc}; set [tls] cert and key, or dev_cert_dir"
        ) from None
    log.warning(
        "TLS uses a self-signed development certificate %s (%s), SHA-256 fingerprint %s;"
        " set [tls] cert and key for production",
        cert,
        "made now" if made else "made earlier",
        fingerprint,
    )
    return str(cert), str(key)


async def listener_contexts(config: Config) -> dict[str, ssl.SSLContext]:
    """A TLS context for each listener that uses TLS, by listener name.

    A certificate that cannot be loaded stops start-up with one sentence naming the
    listener and the file.
    """
    contexts: dict[str, ssl.SSLContext] = {}
    loaded: dict[tuple[str, str], ssl.SSLContext] = {}
    dev: tuple[str, str] | None = None
    for listener in config.listener:
        if not listener.uses_tls:
            continue
        if listener.cert:
            files = (listener.cert, listener.key)
        elif config.tls.cert:
            files = (config.tls.cert, config.tls.key)
        else:
            dev = dev or await _dev_certificate(config)
            files = dev
        if files not in loaded:
            try:
                loaded[files] = server_context(*files)
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise StartupError(
                    f"listener {listener.name!r} cannot load its TLS certificate {files[0]}"
                    f" and key {files[1]}: {reason}"
                ) from None
        contexts[listener.name] = loaded[files]
    return contexts
