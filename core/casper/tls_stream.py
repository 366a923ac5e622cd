"""TLS on a TCP socket's own file descriptor, for the c2s and HTTP listeners and the bench.

:class:`trio.SSLStream` runs OpenSSL over memory BIOs and moves every record through
Python: a receive is a socket read, a BIO write and an ``SSLObject.read``, each with Trio's
bookkeeping around it. :class:`SocketTLSStream` gives the socket to OpenSSL instead
(:class:`ssl.SSLSocket`, non-blocking), so a receive or a send is one C call, and Trio is
asked only to wait when OpenSSL says it would block. On this machine that cuts the CPU
of a small-record echo by about 2.5x (``python -m casper.bench.tls``).

:func:`server_tls_stream` picks it for a :class:`trio.SocketStream` and falls back to
:class:`trio.SSLStream` for any other stream (the in-memory streams of the tests).

A receive that found data without waiting also takes every further record the socket
already holds (up to ``max_bytes``), not just the first: a reader that is behind then pays
one wake-up, one parser feed and one checkpoint for a peer's burst of stanzas instead of
one each. It reads on until OpenSSL says it would wait; asking the kernel first
(``FIONREAD``) before each record cost more than the one read that finds nothing. A receive
that had to wait returns the record that woke it: reading again would mostly find nothing.

Concurrency: one task may receive while another sends. OpenSSL handles interleaved
non-blocking reads and writes on one connection; renegotiation is disabled in the
contexts, so after the handshake a send never waits for the socket to be readable. A
receive may need to write (a TLS 1.3 key update): if a sender is already waiting for the
socket to be writable, the receiver polls instead of waiting beside it.

Error handling: TLS failures and socket errors raise :class:`trio.BrokenResourceError`;
``close_notify`` and an EOF without it both read as EOF, as a plain TCP stream would. A
send cancelled after part of its data went out leaves the stream broken: OpenSSL would
expect the same bytes again, so later sends raise :class:`trio.BrokenResourceError`. A
receive cancelled while waiting loses nothing.

Resource handling: :meth:`SocketTLSStream.aclose` sends ``close_notify`` if the socket
takes it at once, tells Trio the descriptor is closing (waiting tasks get
:class:`trio.ClosedResourceError`) and closes it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import trio

RECEIVE_SIZE = 65536
BUSY_POLL_SECONDS = 0.001  # a receive that must write while a send waits to write
_SOCKET_ERRORS = (ssl.SSLError, OSError)
_WANTS = (ssl.SSLWantReadError, ssl.SSLWantWriteError)  # OpenSSL asks to wait for the socket


class SocketTLSStream(trio.abc.Stream):
    """A TLS connection whose socket OpenSSL reads and writes itself.

    Build one with :meth:`wrap`; the handshake runs on the first receive or send, or on
    :meth:`do_handshake`.
    """

    def __init__(self, tls_socket: ssl.SSLSocket) -> None:
        self.socket = tls_socket
        self._handshaken = False
        self._closed = False
        self._broken = False
        self._receiving = False
        self._sending = False
        self._unfinished: memoryview | None = None  # taken by send_now; send_all finishes it
        self._eof = False  # close_notify came while draining: the next receive reads EOF
        self._receive_error: BaseException | None = None  # met while draining; raised next
        self._handshake_lock = trio.Lock()

    @classmethod
    def wrap(
        cls,
        stream: trio.SocketStream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> SocketTLSStream:
        """Take ``stream``'s descriptor (the stream is unusable afterwards) and wrap it."""
        trio_socket = stream.socket
        raw = socket.socket(
            trio_socket.family, trio_socket.type, trio_socket.proto, fileno=trio_socket.detach()
        )
        raw.setblocking(False)
        tls_socket = context.wrap_socket(
            raw,
            server_side=server_side,
            server_hostname=server_hostname,
            do_handshake_on_connect=False,
        )
        return cls(tls_socket)

    # ------------------------------------------------------------------ what TLS tells

    @property
    def context(self) -> ssl.SSLContext:
        return self.socket.context

    def version(self) -> str | None:
        return self.socket.version()

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        return self.socket.get_channel_binding(cb_type)

    # ------------------------------------------------------------------ the stream

    async def do_handshake(self) -> None:
        """Run the handshake if it has not run yet (a receive or send would run it too)."""
        if not self._handshaken:
            async with self._handshake_lock:
                if not self._handshaken:  # nobody did it while this task waited for the lock
                    await self._retry(self.socket.do_handshake)
                    self._handshaken = True
                    return
        self._check_open()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            if not self._handshaken:
                await self.do_handshake()
            if self._eof or self._receive_error is not None:
                return await self._after_drain()
            max_bytes = max_bytes or RECEIVE_SIZE
            received, waited = await self._retry(self.socket.recv, max_bytes)
            data: bytes = received  # type: ignore[assignment]
            if data and not waited and len(data) < max_bytes:
                data = self._drain(data, max_bytes)
        finally:
            self._receiving = False
        return data

    def _drain(self, first: bytes, max_bytes: int) -> bytes:
        """Append to ``first`` the records that can be read without waiting.

        What ends the drain early is kept for the next receive: EOF, or a socket or TLS
        error, so the data read before it is delivered first.
        """
        chunks, size = [first], len(first)
        while size < max_bytes:
            try:
                more = self.socket.recv(max_bytes - size)
            except _WANTS:
                # nothing more yet, the rest of a record is on its way, or a key update
                # must write: what was read goes now, the rest at the next receive
                break
            except _SOCKET_ERRORS as exc:
                self._receive_error = exc
                break
            if not more:
                self._eof = True
                break
            chunks.append(more)
            size += len(more)
        return first if len(chunks) == 1 else b"".join(chunks)

    async def _after_drain(self) -> bytes:
        """Report what the last drain met: EOF, or the error, as a receive would have."""
        self._check_open()
        await trio.lowlevel.checkpoint()
        if self._receive_error is not None:
            exc = self._receive_error
            raise trio.BrokenResourceError(f"TLS connection failed: {exc}") from exc
        return b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            if not self._handshaken:
                await self.do_handshake()
            if self._broken:
                raise trio.BrokenResourceError("an earlier send was cut short")
            if self._unfinished is not None:  # kept until written: OpenSSL expects it again
                await self._send(self._unfinished)
                self._unfinished = None
            await self._send(memoryview(data))
        finally:
            self._sending = False

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` without waiting, from any task, if no send is under way.

        :return: True if the stream took ``data``: written, or in part held by OpenSSL, in
            which case the next :meth:`send_all` (``b""`` will do) writes the rest first.
            False if it was not taken: a send is under way or pending, or the stream is
            broken (the next :meth:`send_all` says so).
        """
        if not self.can_send_now:
            return False
        try:
            sent = self.socket.send(data)
        except _WANTS:
            self._unfinished = memoryview(data)  # OpenSSL expects the same bytes again
            return True
        except _SOCKET_ERRORS:
            self._broken = True
            return False
        if sent < len(data):
            self._unfinished = memoryview(data)[sent:]
        return True

    @property
    def can_send_now(self) -> bool:
        """Whether :meth:`send_now` would take data now (it may still fail to write it)."""
        return not (self._sending or self._unfinished is not None or self._broken
                    or self._closed or not self._handshaken)  # fmt: skip

    @property
    def broken(self) -> bool:
        """Whether a write failed or was cut short: later sends raise."""
        return self._broken

    def abandon_pending(self) -> None:
        """Give up what :meth:`send_now` left pending: it will never be written, and the
        stream is broken from now on (part of a record may be on the wire)."""
        if self._unfinished is not None:
            self._unfinished = None
            self._broken = True

    @property
    def send_pending(self) -> bool:
        """Whether :meth:`send_now` left bytes that the next :meth:`send_all` writes."""
        return self._unfinished is not None

    async def _send(self, view: memoryview) -> None:
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        sent = 0
        waited = False  # OpenSSL may hold a record it expects to finish with these bytes
        yielded = False  # a wait is the send's schedule point
        try:
            while sent < len(view):
                try:
                    sent += self.socket.send(view[sent:])
                    waited = False
                    continue
                except _WANTS as want:
                    reading = isinstance(want, ssl.SSLWantReadError)
                except _SOCKET_ERRORS as exc:
                    self._check_open()
                    self._broken = True
                    raise trio.BrokenResourceError(f"TLS connection failed: {exc}") from exc
                waited = yielded = True
                await self._wait_as_asked(reading)
        except BaseException:
            if waited or sent:
                self._broken = True  # the peer got part of this data: nothing may follow
            raise
        if not yielded:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._handshaken and not self._broken and self._unfinished is None:
            try:
                self.socket.unwrap()  # sends close_notify; the peer's answer is not awaited
            except (*_SOCKET_ERRORS, ValueError):
                pass
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ waiting on OpenSSL

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this TLS stream is closed")

    async def _retry(self, operation: Callable[..., object], *args: object) -> tuple[object, bool]:
        """Run ``operation`` (a handshake or a receive) until OpenSSL stops asking to wait;
        a checkpoint either way (a wait is one: no other follows it, as in Trio's sockets).

        :return: what ``operation`` returned, and whether it had to wait for the socket.
        """
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                result = operation(*args)
            except _WANTS as want:
                reading = isinstance(want, ssl.SSLWantReadError)
            except _SOCKET_ERRORS as exc:
                self._check_open()
                raise trio.BrokenResourceError(f"TLS connection failed: {exc}") from exc
            else:
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return result, waited
            waited = True
            await self._wait_as_asked(reading)

    async def _wait_as_asked(self, reading: bool) -> None:
        """Wait until the socket is readable (``reading``) or writable, as OpenSSL asked;
        poll if another task already waits the same way.

        Called outside the ``except`` clause that caught OpenSSL's request: a coroutine
        suspended inside one keeps the exception, its traceback and their frames alive,
        about a kilobyte for every idle connection.
        """
        wait = trio.lowlevel.wait_readable if reading else trio.lowlevel.wait_writable
        try:
            await wait(self.socket)
        except trio.BusyResourceError:
            await trio.sleep(BUSY_POLL_SECONDS)
        self._check_open()


TLSStream = SocketTLSStream | trio.SSLStream[trio.abc.Stream]


def server_tls_stream(stream: trio.abc.Stream, context: ssl.SSLContext) -> TLSStream:
    """The server side of TLS over ``stream``: a :class:`SocketTLSStream` on a TCP socket,
    a :class:`trio.SSLStream` on anything else."""
    if isinstance(stream, trio.SocketStream):
        return SocketTLSStream.wrap(stream, context, server_side=True)
    return trio.SSLStream(stream, context, server_side=True, https_compatible=False)


def client_tls_stream(
    stream: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str
) -> TLSStream:
    """The client side of TLS over ``stream``, chosen as :func:`server_tls_stream` does."""
    if isinstance(stream, trio.SocketStream):
        return SocketTLSStream.wrap(stream, context, server_side=False,
                                    server_hostname=server_hostname)  # fmt: skip
    return trio.SSLStream(stream, context, server_hostname=server_hostname)


TLS_STREAMS = (SocketTLSStream, trio.SSLStream)
"""The stream types that carry TLS themselves and can tell channel bindings."""
