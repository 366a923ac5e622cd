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
under way, by the sender.

Error handling: TLS failures and a transport EOF without ``close_notify`` raise
:class:`trio.BrokenResourceError` (the peer is gone); ``close_notify`` reads as EOF.
Resource handling: :meth:`aclose` sends ``close_notify`` if it can, then closes the
transport.
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

    # ------------------------------------------------------------------ TLS

    async def do_handshake(self) -> None:
        async with self._receive_guard:
            while True:
                try:
                    self._conn.do_handshake()
                except SSL.WantReadError:
                    await self._flush()
                    if self._eof:
                        raise trio.BrokenResourceError("EOF during the TLS handshake") from None
                    await self._read_transport()
                    continue
                except SSL.Error as exc:
                    await self._flush_quietly()  # the alert, if any
                    raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
                await self._flush()
                return

    def peer_certificate(self) -> PeerCertificate | None:
        """The peer's certificate and whether it verified (after the handshake)."""
        return peer_certificate(self._conn)

    # ------------------------------------------------------------------ Stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._conn.sendall(bytes(data))
        except SSL.Error as exc:
            raise trio.BrokenResourceError(f"TLS: {exc}") from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        async with self._receive_guard:
            while True:
                try:
                    data = self._conn.recv(max_bytes or RECEIVE_SIZE)
                except SSL.WantReadError:
                    await self._flush_unless_sending()  # e.g. a key update answer
                    if self._eof:
                        raise trio.BrokenResourceError("EOF without TLS close_notify") from None
                    await self._read_transport()
                    continue
                except SSL.ZeroReturnError:
                    return b""
                except SSL.Error as exc:
                    raise trio.BrokenResourceError(f"TLS: {exc}") from exc
                await self._flush_unless_sending()
                return data

    async def aclose(self) -> None:
        try:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await self._flush_quietly()
        finally:
            await self.transport.aclose()

    # ------------------------------------------------------------------ BIOs

    async def _read_transport(self) -> None:
        data = await self.transport.receive_some(RECEIVE_SIZE)
        if data:
            self._conn.bio_write(bytes(data))
        else:
            self._eof = True
            self._conn.bio_shutdown()

    async def _flush(self) -> None:
        async with self._send_lock:
            while True:
                try:
                    data = self._conn.bio_read(RECEIVE_SIZE)
                except SSL.WantReadError:
                    return
                if not data:
                    return
                await self.transport.send_all(data)

    async def _flush_unless_sending(self) -> None:
        """Flush from the receiving side, unless a sender holds the lock: it drains the
        outgoing BIO until empty, so what ``recv`` produced leaves with its writes (and a
        peer that stops reading blocks the writer, not the reader)."""
        if not self._send_lock.locked():
            await self._flush()

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
