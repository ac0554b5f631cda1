"""A tiny authoritative DNS server on loopback UDP, for MX tests: the only mocked edge.

It answers from a dict of records; a name it does not know is NXDOMAIN, a known name
without the asked type is an empty answer (NoAnswer), and names in `failing` get SERVFAIL.
The resolver under test is dnspython itself, pointed at this server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Records = dict[tuple[str, str], list[str]]
"""(name, type) → record texts, e.g. ("example.test", "MX"): ["10 mx1.example.test."]."""


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


class FakeDns:
    """Serves `records` on 127.0.0.1 until closed."""

    def __init__(self, records: Records, failing: tuple[str, ...] = ()) -> None:
        self.records = {(_fqdn(n), t.upper()): v for (n, t), v in records.items()}
        self.names = {n for n, _ in self.records}
        self.failing = {_fqdn(n) for n in failing}
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def resolver(self) -> dns.asyncresolver.Resolver:
        """A dnspython resolver that asks only this server."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.timeout = resolver.lifetime = 5
        return resolver

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in self.records:
            response.answer.append(
                dns.rrset.from_text_list(name, 60, "IN", rdtype, self.records[(name, rdtype)])
            )
        return response.to_wire()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self._sock.recvfrom(4096)
                if not wire:  # shut down
                    return
                self._sock.sendto(self._answer(wire), peer)
            except OSError:
                return

    def close(self) -> None:
        """Stop serving."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recvfrom
        self._sock.close()
        self._thread.join(5)

    def __enter__(self) -> FakeDns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
