"""A Trio stream over a pyOpenSSL connection with memory BIOs, like :class:`trio.SSLStream`.

OpenSSL never touches the network: it reads ciphertext from an incoming memory BIO and
writes to an outgoing one; this class moves bytes between those BIOs and the transport
stream. It exists because the s2s contexts (:mod:`.trust`) need pyOpenSSL's verify
callback, which :mod:`ssl` lacks.

Concurrency: one task may receive while another sends (the s2s reader and writers do).
Ciphertext leaves through one lock, taken *before* draining the outgoing BIO, so records
reach the transport in the order OpenSSL made them. Renegotiation is disabled in the
contexts; TLS 1.3 post-handshake messages (tickets, key updates) are handled by
``recv``, and any answer they need is flushed by the receiving task or, if a send is
under way, by the sender. The receiving task sends only what its own ``recv`` left in the
BIO, never a writer's records: otherwise, with both peers' readers blocked sending, nobody
would read (a deadlock under big transfers both ways).

Error handling: TLS failures and a transport EOF without ``close_notify`` raise
:class:`trio.BrokenResourceError` (the peer is gone); ``close_notify`` reads as EOF. A
send cut short (cancelled, or the transport failed) may have left part of a record on
the wire, so the stream is then broken: later sends and receives raise
:class:`trio.BrokenResourceError` and :meth:`aclose` sends no ``close_notify``. A receive
cancelled while it waits for the transport loses nothing.
Resource handling: :meth:`aclose` sends ``close_notify`` if it can, within a second,
then closes the transport.
"""

from __future__ import annotations

import trio
from OpenSSL import SSL

from .certs import PeerCertificate
from .trust import new_connection, peer_certificate

RECEIVE_SIZE = 65536


class PyOpenSSLStream(trio.abc.Stream):
    """TLS over ``transport`` with ``context``; call :meth:`do_handshake` first.

    :param server_hostname: SNI name to send (client side).
    """

    def __init__(self, transport: trio.abc.Stream, context: SSL.Context, *,
                 server_side: bool, server_hostname: str | None = None) -> None:  # fmt: skip
        self.transport = transport
        self._conn = new_connection(context)
        if server_side:
            self._conn.set_accept_state()
        else:
            self._conn.set_connect_state()
            if server_hostname:
                self._conn.set_tlsext_host_name(server_hostname.encode("idna"))
        self._send_lock = trio.StrictFIFOLock()
        self._receive_guard = trio.StrictFIFOLock()
        self._eof = False
        self._broken = False  # a send was cut short: records on the wire may be partial

    # ------------------------------------------------------------------ TLS

    async def do_handshake(self) -> None:
        async with self._receive_guard:
            while True:
                try:
                    self._conn.do_handshake()
                    break
                except SSL.WantReadError:
                    pass  # waited for below, outside the handler (see receive_some)
                except SSL.Error as exc:
                    await self._flush_quietly()  # the alert, if any
                    raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
                await self._flush()
                if self._eof:
                    raise trio.BrokenResourceError("EOF during the TLS handshake")
                await self._read_transport()
            await self._flush()

    def peer_certificate(self) -> PeerCertificate | None:
        """The peer's certificate and whether it verified (after the handshake)."""
        return peer_certificate(self._conn)

    # ------------------------------------------------------------------ Stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()  # cancelled before: nothing written
        self._check_broken()
        try:
            self._conn.sendall(bytes(data))
        except SSL.Error as exc:
            self._broken = True
            raise trio.BrokenResourceError(f"TLS: {exc}") from exc
        try:
            await self._flush()
        except BaseException:
            self._broken = True  # how much of ``data`` left is unknown
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        async with self._receive_guard:
            self._check_broken()
            while True:
                try:
                    data = self._conn.recv(max_bytes or RECEIVE_SIZE)
                except SSL.WantReadError:
                    pass  # waited for below: a coroutine suspended inside a handler keeps
                    # the exception and its traceback's frames alive
                except SSL.ZeroReturnError:
                    return b""
                except SSL.Error as exc:
                    self._broken = True
                    raise trio.BrokenResourceError(f"TLS: {exc}") from exc
                else:
                    await self._flush_unless_sending()  # no checkpoint unless it sends
                    return data
                await self._flush_unless_sending()  # e.g. a key update answer
                if self._eof:
                    raise trio.BrokenResourceError("EOF without TLS close_notify")
                await self._read_transport()  # cancelled there: nothing is lost

    async def aclose(self) -> None:
        try:
            if not self._broken:  # else close_notify would follow a partial record
                try:
                    self._conn.shutdown()
                except SSL.Error:
                    pass
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    await self._flush_quietly()
        finally:
            await self.transport.aclose()

    def _check_broken(self) -> None:
        if self._broken:
            raise trio.BrokenResourceError("TLS stream broken by an interrupted send")

    # ------------------------------------------------------------------ BIOs

    async def _read_transport(self) -> None:
        data = await self.transport.receive_some(RECEIVE_SIZE)
        if data:
            self._conn.bio_write(bytes(data))
        else:
            self._eof = True
            self._conn.bio_shutdown()

    async def _flush(self) -> None:
        """Send the outgoing BIO until it is empty (what other tasks add meanwhile too)."""
        async with self._send_lock:
            while data := self._take_outgoing(RECEIVE_SIZE):
                await self._send_ciphertext(data)

    async def _flush_unless_sending(self) -> None:
        """Flush from the receiving side, unless a sender holds the lock: it drains the
        outgoing BIO until empty, so what ``recv`` produced leaves with its writes (and a
        peer that stops reading blocks the writer, not the reader).

        Only what is in the BIO now is sent: the lock is taken without yielding, so no
        writer can add records before they are taken; a writer that comes meanwhile waits
        for the lock and sends its own. Nothing to send: no checkpoint, so a cancellation
        cannot strike after ``recv`` consumed the data being returned.
        """
        if self._send_lock.locked():
            return
        data = self._take_outgoing()
        if not data:
            return
        self._send_lock.acquire_nowait()  # free: checked above, nothing yielded since
        try:
            await self._send_ciphertext(data)
        finally:
            self._send_lock.release()

    def _take_outgoing(self, limit: int | None = None) -> bytes:
        """Ciphertext from the outgoing BIO: everything, or up to about ``limit`` bytes."""
        chunks: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            try:
                chunk = self._conn.bio_read(RECEIVE_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def _send_ciphertext(self, data: bytes) -> None:
        try:
            await self.transport.send_all(data)
        except BaseException:
            self._broken = True  # part of a record may have left: nothing can follow it
            raise

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
