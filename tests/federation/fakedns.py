"""A tiny authoritative DNS server for tests: SRV and A records over UDP, on loopback.

ejabberd resolves peers with Erlang's ``inet_res`` (DNS only, no hosts file), so the
federation tests point it (via ``inetrc``) at this server instead of the system's.
Casper's own SRV resolution is tested against it too. Runs in a thread; sync API.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from casper.s2s import dns


class FakeDNS:
    def __init__(self) -> None:
        self.srv: dict[str, list[tuple[int, int, int, str]]] = {}
        self.a: dict[str, str] = {}
        self.queries: list[tuple[str, int]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._sock.sendto(self.answer(query), peer)
            except (OSError, dns.DNSFormatError, struct.error):
                continue

    def answer(self, query: bytes) -> bytes:
        query_id, _flags, _count = struct.unpack("!HHH", query[:6])
        name, offset = dns.read_name(query, 12)
        qtype = struct.unpack("!H", query[offset : offset + 2])[0]
        name = name.lower().rstrip(".")
        self.queries.append((name, qtype))
        question = query[12 : offset + 4]
        answers = []
        if qtype == dns.SRV:
            for priority, weight, port, target in self.srv.get(name, []):
                rdata = struct.pack("!HHH", priority, weight, port) + dns.encode_name(target)
                answers.append((dns.SRV, rdata))
        elif qtype == dns.A and name in self.a:
            answers.append((dns.A, socket.inet_aton(self.a[name])))
        known = name in self.srv or name in self.a
        rcode = 0 if known else dns.NXDOMAIN
        header = struct.pack("!HHHHHH", query_id, 0x8400 | 0x0100 | 0x0080 | rcode, 1,
                             len(answers), 0, 0)  # fmt: skip
        body = b"".join(
            b"\xc0\x0c" + struct.pack("!HHIH", rtype, dns.IN, 5, len(rdata)) + rdata
            for rtype, rdata in answers
        )
        return header + question + body

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


@contextmanager
def fake_dns() -> Iterator[FakeDNS]:
    server = FakeDNS()
    server.start()
    try:
        yield server
    finally:
        server.stop()
