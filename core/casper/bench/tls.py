"""``python -m casper.bench.tls``: server CPU per TLS record, trio.SSLStream against
:class:`~casper.tls_stream.SocketTLSStream`, measured in the same run.

A Trio server on loopback echoes every receive back; a client in a subprocess (blocking
:mod:`ssl`, TLS 1.3) keeps ``--in-flight`` stanza-sized records outstanding, one record
per write, as chat clients do. The server's CPU time (user and system) is read around the
exchange. Rounds alternate the two implementations; the medians and their ratio print::

    python -m casper.bench.tls --records 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import resource
import ssl
import statistics
import sys
import tempfile
from pathlib import Path

import trio

from casper.tls import ensure_certificate, server_ssl_context
from casper.tls_stream import SocketTLSStream

RECORD = b"<message to='juliet@localhost/balcony' type='chat' id='m1'><body>hello</body></message>"
IMPLEMENTATIONS = ("trio.SSLStream", "SocketTLSStream")

_CLIENT = r"""
import socket, ssl, sys
port, records, in_flight, record = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
tls = context.wrap_socket(socket.create_connection(("127.0.0.1", port)))
tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sent = received = 0
while received < records * len(record):
    while sent < records and sent - received // len(record) < in_flight:
        tls.sendall(record)
        sent += 1
    received += len(tls.recv(65536))
tls.close()
"""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _echo(stream: trio.abc.Stream) -> None:
    while data := await stream.receive_some(65536):
        await stream.send_all(data)


async def measure(implementation: str, context: ssl.SSLContext, records: int,
                  in_flight: int) -> float:  # fmt: skip
    """Server CPU microseconds per echoed record for one implementation."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    spent: list[float] = []

    async def serve(stream: trio.SocketStream) -> None:
        if implementation == "SocketTLSStream":
            tls: trio.abc.Stream = SocketTLSStream.wrap(stream, context, server_side=True)
        else:
            tls = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
        await tls.do_handshake()  # type: ignore[attr-defined]
        started = _cpu_seconds()
        await _echo(tls)
        spent.append(_cpu_seconds() - started)
        await tls.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, listeners)
        client = [sys.executable, "-c", _CLIENT, str(port), str(records), str(in_flight),
                  RECORD.decode()]  # fmt: skip
        await trio.run_process(client)
        while not spent:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return spent[0] / records * 1e6


async def run(records: int, rounds: int, in_flight: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = ensure_certificate(Path(tmp), "localhost")
        context = server_ssl_context(cert, key)
        samples: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        for _ in range(rounds):
            for name in IMPLEMENTATIONS:
                samples[name].append(await measure(name, context, records, in_flight))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m casper.bench.tls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=10)
    args = parser.parse_args(argv)
    samples = trio.run(run, args.records, args.rounds, args.in_flight)
    baseline = statistics.median(samples[IMPLEMENTATIONS[0]])
    print("implementation    us/record  ratio to trio.SSLStream (below 1 = less CPU)")
    for name, values in samples.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{value:.1f}" for value in values)
        print(f"{name:<17} {median:9.1f}  {median / baseline:.2f}x   rounds: {rounds}")


if __name__ == "__main__":
    main()
