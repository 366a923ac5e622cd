"""An in-memory ``trio.abc.Listener``: each ``connect()`` hands the server one end of a
``trio.testing.memory_stream_pair`` and returns the other."""

from __future__ import annotations

import trio
import trio.testing


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](100)
        self._closed = False

    async def connect(self) -> trio.abc.Stream:
        """Open a client connection; the server side goes to ``accept``."""
        client, server = trio.testing.memory_stream_pair()
        await self._send.send(server)
        return client

    async def accept(self) -> trio.abc.Stream:
        if self._closed:
            raise trio.ClosedResourceError
        return await self._receive.receive()

    async def aclose(self) -> None:
        self._closed = True
        await self._receive.aclose()
        await trio.lowlevel.checkpoint()
