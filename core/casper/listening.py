"""Opening the server's TCP ports, with an error that names the port and what it is for.

``trio.open_tcp_listeners`` and ``socket.bind`` fail with ``[Errno 98] Address already in
use`` and nothing else; with four kinds of port (c2s, direct TLS, HTTP, s2s) an operator
needs to know which one. :class:`ListenError` is an :class:`OSError`, so the command line
reports it as one ``casper: error:`` line.
"""

from __future__ import annotations

import trio


class ListenError(OSError):
    """A port could not be opened; the message says which, for what, and why."""


def listen_error(purpose: str, host: str, port: int, exc: OSError) -> ListenError:
    """The :class:`ListenError` for ``exc``, raised while opening ``host``:``port``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ListenError(f"cannot listen on {host}:{port} ({purpose}): {reason}")


async def open_tcp_listeners(purpose: str, port: int, host: str) -> list[trio.SocketListener]:
    """``trio.open_tcp_listeners(port, host=host)``, failing with a :class:`ListenError`.

    :param purpose: what the port serves, as an operator would name it (``"c2s"``,
        ``"direct TLS"`` ...).
    """
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise listen_error(purpose, host, port, exc) from exc
