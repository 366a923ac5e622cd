"""Where a remote domain's XMPP server is: static routes, DNS SRV, then the domain itself.

Order (RFC 6120 §3.2): a static route from ``[s2s.routes]`` wins; otherwise the SRV
records of ``_xmpp-server._tcp.DOMAIN`` in RFC 2782 order; with none (or no answer), the
domain itself on port 5269. A single SRV target of ``.`` means the domain offers no
server-to-server service at all. Timeouts come from the caller's cancel scope.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from .dns import DNSFormatError, build_query, order_srv, parse_srv_answer

log = logging.getLogger("casper.s2s.resolve")
DEFAULT_PORT = 5269
QUERY_TIMEOUT = 2.0


class NoService(Exception):
    """The domain says it has no XMPP server (SRV target ``.``)."""


def system_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """The ``nameserver`` lines of resolv.conf (port 53); localhost if there are none."""
    servers = []
    try:
        for line in resolv_conf.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                servers.append((fields[1], 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


class Resolver:
    """Find ``(host, port)`` targets for a remote domain.

    :param routes: static routes, domain -> (host, port).
    :param nameservers: DNS servers to ask, ``(address, port)``; resolv.conf's by default.
    """

    def __init__(self, routes: Mapping[str, tuple[str, int]],
                 nameservers: Sequence[tuple[str, int]] | None = None) -> None:  # fmt: skip
        self.routes = routes
        self._nameservers = list(nameservers) if nameservers is not None else None

    @property
    def nameservers(self) -> list[tuple[str, int]]:
        if self._nameservers is None:
            self._nameservers = system_nameservers()
        return self._nameservers

    async def targets(self, domain: str) -> list[tuple[str, int]]:
        """Where to connect for ``domain``, best first.

        :raises NoService: the domain publishes that it has no s2s service.
        """
        if domain in self.routes:
            return [self.routes[domain]]
        records = await self.srv(f"_xmpp-server._tcp.{domain}")
        if len(records) == 1 and records[0].target == ".":
            raise NoService(domain)
        found = [(r.target, r.port) for r in order_srv(records) if r.target != "."]
        return found or [(domain, DEFAULT_PORT)]

    async def srv(self, name: str) -> list:  # list[SRVRecord]
        """Ask each nameserver in turn; ``[]`` when none answers usefully."""
        for address, port in self.nameservers:
            try:
                with trio.move_on_after(QUERY_TIMEOUT):
                    answer = await self._ask(address, port, name)
                    if answer is not None:
                        return answer
            except (OSError, DNSFormatError) as exc:
                log.debug("DNS server %s:%s failed for %s: %s", address, port, name, exc)
        return []

    async def _ask(self, address: str, port: int, name: str) -> list | None:
        query_id = secrets.randbelow(65536)
        family = trio.socket.AF_INET6 if ":" in address else trio.socket.AF_INET
        with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
            await sock.connect((address, port))
            await sock.send(build_query(query_id, name))
            while True:
                message = await sock.recv(65535)
                records = parse_srv_answer(message, query_id)
                if records is not None:
                    return records


async def open_connection(resolver: Resolver, domain: str) -> trio.SocketStream:
    """Connect to the first reachable target of ``domain``.

    :raises OSError: no target could be reached (the last error).
    :raises NoService: see :meth:`Resolver.targets`.
    """
    targets = await resolver.targets(domain)
    error: OSError | None = None
    for host, port in targets:
        try:
            return await trio.open_tcp_stream(host, port)
        except OSError as exc:
            log.debug("s2s: %s via %s:%s: %s", domain, host, port, exc)
            error = exc
    assert error is not None
    raise error
