"""The accepting worker's half of a piped client stream: copy bytes both ways between the
client's transport and the :class:`~casper.cluster.pipe.Pipe` to the account's home.

Ends:

- the client ends its transport (EOF): the home reads EOF and may still answer, for
  :data:`GRACE` seconds, then the relay stops;
- the client's transport breaks, or a framing transport (WebSocket, BOSH) refuses its
  input: the pipe is closed (the home sees its transport gone); a refused input gets its
  stream error here, since the home never saw it;
- the home ends the stream: the relay stops once the client has been sent everything;
- the relay is cancelled (shutdown): the client gets ``system-shutdown``.

The pipe is always closed on the way out.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import trio

from casper.connection import send_quietly
from casper.errors import StreamError
from casper.xml import STREAM_CLOSE
from casper.xml.serializer import stream_error, stream_error_of

from .pipe import Pipe

GRACE = 5.0  # seconds the home may go on writing after the client's EOF
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)
SYSTEM_SHUTDOWN = stream_error("system-shutdown") + STREAM_CLOSE


async def relay(client: trio.abc.Stream, pipe: Pipe, shutting_down: Callable[[], bool]) -> None:
    """Copy between ``client`` and ``pipe`` until the stream ends (see the module doc).

    :param shutting_down: asked when cancelled: whether to send ``system-shutdown``.
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_client_to_home, client, pipe, nursery.cancel_scope)
            try:
                while data := await pipe.receive_some():
                    await client.send_all(data)
            except _GONE:
                pass
            nursery.cancel_scope.cancel()
    except BaseException:  # Cancelled, or a group of them
        if shutting_down():
            await send_quietly(client, SYSTEM_SHUTDOWN)
        raise
    finally:
        with trio.CancelScope(shield=True):
            await pipe.aclose()


async def _client_to_home(client: trio.abc.Stream, pipe: Pipe, scope: trio.CancelScope) -> None:
    try:
        while data := await client.receive_some():
            await pipe.send_all(data)
    except StreamError as exc:  # e.g. a WebSocket frame too large
        await send_quietly(client, stream_error_of(exc) + STREAM_CLOSE)
        scope.cancel()
        return
    except _GONE:
        scope.cancel()
        return
    await pipe.send_eof()
    scope.deadline = min(scope.deadline, trio.current_time() + GRACE)
