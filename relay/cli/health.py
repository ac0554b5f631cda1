"""`relay healthcheck`: ask a running relay's /healthz, at the web address its config names.

    relay healthcheck [--config FILE] [--web HOST:PORT] [--timeout SECONDS]

For container health checks (the Dockerfile's HEALTHCHECK) and scripts: the address comes
from the same config `relay serve` reads, so changing `[web] address` needs no second
edit. A wildcard host (0.0.0.0, ::) is asked on loopback. Exit 0 when /healthz answers
200, else 1 with the reason on stderr (Docker reads 1 as unhealthy and reserves 2, so a
configuration problem is 1 here too). Plain http.client: no proxy from the environment
is used, and none of the server's libraries is imported.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from relay.cli.output import DEFAULT_CONFIG, EXIT_OK, load
from relay.config import with_overrides
from relay.errors import ConfigError

EXIT_UNHEALTHY = 1
PATH = "/healthz"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def probe(host: str, port: int, timeout: float) -> str | None:
    """Ask http://HOST:PORT/healthz; None when it answers 200, else what went wrong."""
    import http.client  # here: every other command (`relay stats`) starts without it

    host = WILDCARDS.get(host, host)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", PATH)
        response = connection.getresponse()
        if response.status != 200:
            return f"{PATH} answered {response.status} {response.reason}"
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer from {host}:{port}: {exc}"
    finally:
        connection.close()
    return None


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when the configured web address answers /healthz with 200, else 1."""
    try:
        web = with_overrides(load(args.config), web=args.web).web
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    problem = probe(web.host, web.port, args.timeout)
    if problem is not None:
        print(f"relay: unhealthy: {problem}", file=sys.stderr)
        return EXIT_UNHEALTHY
    print(f"ok: http://{web.address}{PATH}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register `relay healthcheck`."""
    parser = sub.add_parser(
        "healthcheck",
        help="ask a running relay's /healthz at the configured web address (exit 0 healthy, 1 not)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"config file (default: ./{DEFAULT_CONFIG} if present)")
    parser.add_argument("--web", metavar="HOST:PORT", help="ask here instead")
    parser.add_argument(
        "--timeout", type=float, default=4.0, help="seconds to wait for the answer (default 4)"
    )
    parser.set_defaults(func=cmd_healthcheck)
