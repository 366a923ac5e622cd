"""TLS: modern defaults (TLS 1.2+, forward-secret AEAD suites) and certificate reload on SIGHUP.

The defaults are checked twice: on the context itself over memory streams, next to a
permissive control server that the same weak client *can* talk to (so the failure is the
server's refusal, not the client's own library saying no), and on a running ``casper serve``
over both its STARTTLS and its direct TLS port.

Reload: ``casper serve`` with ``tls.cert_file``/``tls.key_file``; the files are replaced by a
certificate from another CA and the process gets SIGHUP. New connections then present the
new certificate, a connection opened before goes on, and files that cannot be loaded leave
the last good certificate in use.
"""

from __future__ import annotations

import os
import signal
import ssl
import warnings
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from casper.testing import TestClient
from casper.tls import server_ssl_context

from tests.helpers import sync
from tests.reliability.conftest import (
    DOMAIN,
    HOST,
    PASSWORD,
    CasperProcess,
    casper_process,
    create_accounts,
    write_config,
)

DEADLINE = 60.0
WEAK_SUITES = "AES128-SHA:AES256-SHA:DES-CBC3-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA"


def issue(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    leaf = ca.issue_cert(DOMAIN, "127.0.0.1")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def replace(target: Path, source: Path) -> None:
    """Replace ``target`` atomically, as certificate renewal tools do."""
    temporary = target.with_suffix(".new")
    temporary.write_bytes(source.read_bytes())
    os.replace(temporary, target)


def client_context(
    ca: trustme.CA | None = None,
    *,
    max_version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    else:
        ca.configure_trust(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated
        if ciphers is not None:
            context.set_ciphers(ciphers + ":@SECLEVEL=0")
        if max_version is not None:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = max_version
    return context


def weak_clients() -> dict[str, ssl.SSLContext]:
    return {
        "tls1.0": client_context(max_version=ssl.TLSVersion.TLSv1, ciphers="DEFAULT"),
        "tls1.1": client_context(max_version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT"),
        "weak-suites": client_context(max_version=ssl.TLSVersion.TLSv1_2, ciphers=WEAK_SUITES),
    }


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> bool:
    """Whether a TLS handshake between the two contexts succeeds (over memory streams)."""
    left, right = trio.testing.memory_stream_pair()
    server_side = trio.SSLStream(left, server, server_side=True)
    client_side = trio.SSLStream(right, client, server_hostname=DOMAIN)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server_side.do_handshake)
            nursery.start_soon(client_side.do_handshake)
    except (trio.BrokenResourceError, BaseExceptionGroup):
        return False
    return True


def permissive_server(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def rsa_files(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)  # weak suites need an RSA certificate
    return (ca, *issue(ca, tmp_path / "rsa"))


@pytest.mark.parametrize("weak", list(weak_clients()))
async def test_server_context_refuses_old_protocols_and_weak_suites(rsa_files, weak: str) -> None:
    ca, cert, key = rsa_files
    client = weak_clients()[weak]
    if not await handshake(permissive_server(cert, key), client):
        pytest.skip(f"this OpenSSL cannot speak {weak} at all, so there is nothing to refuse")
    assert not await handshake(server_ssl_context(cert, key), client)
    assert await handshake(server_ssl_context(cert, key), client_context(ca))  # modern: fine


def test_server_context_offers_only_forward_secret_aead_suites(rsa_files) -> None:
    _ca, cert, key = rsa_files
    context = server_ssl_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    for suite in context.get_ciphers():
        if suite["protocol"] == "TLSv1.3":
            continue
        assert suite["kea"] in ("kx-ecdhe", "kx-dhe"), suite["name"]
        assert suite["aead"], suite["name"]


# ---------------------------------------------------------------- a running server


async def peer_certificate(port: int, *, direct: bool, context: ssl.SSLContext) -> bytes:
    """Connect (direct TLS, or STARTTLS) and return the server's certificate (DER)."""
    tcp = await trio.open_tcp_stream(HOST, port)
    if direct:
        stream = trio.SSLStream(tcp, context, server_hostname=DOMAIN)
        try:
            await stream.do_handshake()
            return stream.getpeercert(binary_form=True)
        finally:
            await stream.aclose()
    client = TestClient(tcp, DOMAIN)
    try:
        await client.open_stream()
        await client.starttls(context)
        return client.stream.getpeercert(binary_form=True)
    finally:
        await client.stream.aclose()


async def refused(port: int, *, direct: bool, context: ssl.SSLContext) -> bool:
    try:
        await peer_certificate(port, direct=direct, context=context)
    except (trio.BrokenResourceError, ssl.SSLError):
        return True
    return False


def der(cert_file: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(
        cert_file.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )


async def wait_for_log(proc: CasperProcess, text: str, count: int = 1) -> None:
    with trio.fail_after(10):
        while proc.log.count(text) < count:
            await trio.sleep(0.02)


async def test_running_server_refuses_weak_clients_on_both_ports(tmp_path: Path) -> None:
    files = write_config(tmp_path, tls_port=True)
    with trio.fail_after(DEADLINE):
        async with casper_process(files):
            assert files.tls_port is not None
            for direct, port in ((False, files.port), (True, files.tls_port)):
                for name, weak in weak_clients().items():
                    if name != "weak-suites":  # the generated certificate is ECDSA
                        assert await refused(port, direct=direct, context=weak), (name, direct)
                good = ssl.create_default_context(cafile=str(files.cert))
                assert await peer_certificate(port, direct=direct, context=good) == der(files.cert)


async def test_sighup_reloads_the_certificate_for_new_connections(tmp_path: Path) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert, key = issue(old_ca, tmp_path / "live")
    new_cert, new_key = issue(new_ca, tmp_path / "renewed")
    extra = f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n'
    files = write_config(tmp_path, tls_port=True, extra=extra)
    await trio.to_thread.run_sync(create_accounts, files, ["romeo"])
    old_trust, new_trust = client_context(old_ca), client_context(new_ca)
    with trio.fail_after(DEADLINE):
        async with casper_process(files) as proc:
            assert files.tls_port is not None
            ports = ((False, files.port), (True, files.tls_port))
            for direct, port in ports:
                assert await peer_certificate(port, direct=direct, context=old_trust) == der(cert)
            romeo = TestClient(await trio.open_tcp_stream(HOST, files.port), DOMAIN)
            await romeo.open_stream()
            await romeo.starttls(old_trust)
            await romeo.authenticate("romeo", PASSWORD)
            await romeo.bind("before")

            replace(key, new_key)
            replace(cert, new_cert)
            proc.process.send_signal(signal.SIGHUP)
            await wait_for_log(proc, "TLS certificate reloaded")
            for direct, port in ports:
                assert await peer_certificate(port, direct=direct, context=new_trust) == der(cert)
                assert await refused(port, direct=direct, context=old_trust)
            await sync(romeo)  # the connection made before the reload goes on

            cert.write_text("not a certificate")  # a botched renewal
            proc.process.send_signal(signal.SIGHUP)
            await wait_for_log(proc, "TLS certificate not reloaded")
            for direct, port in ports:
                got = await peer_certificate(port, direct=direct, context=new_trust)
                assert got == ssl.PEM_cert_to_DER_cert(
                    new_cert.read_text().split("-----END CERTIFICATE-----")[0]
                    + "-----END CERTIFICATE-----\n"
                )
            await romeo.close()
        assert "Traceback" not in proc.log
