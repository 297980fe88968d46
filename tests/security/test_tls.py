"""TLS contexts in memory: settings, in-memory PEM, mTLS handshakes, reload and its watcher."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from cryptography import x509

from netkit.security import ReloadingServerContext, client_context, peer_identity, server_context
from tests.security import pki


async def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[trio.SSLStream[trio.abc.Stream], trio.SSLStream[trio.abc.Stream]]:
    a, b = trio.testing.memory_stream_pair()
    s = trio.SSLStream(a, server, server_side=True)
    c = trio.SSLStream(b, client, server_hostname="localhost")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.do_handshake)
            nursery.start_soon(c.do_handshake)
    return s, c


def test_contexts_are_hardened(ca: trustme.CA) -> None:
    leaf = pki.server_cert(ca)
    server = server_context(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())
    client = client_context(ca.cert_pem.bytes())
    for context in (server, client):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        names = {c["name"] for c in context.get_ciphers()}
        assert not any("CBC" in n or n.endswith("-SHA") for n in names if "TLS_" not in n)
        assert context.options & ssl.OP_NO_COMPRESSION
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert server.verify_mode == ssl.CERT_NONE


async def test_in_memory_mtls_handshake_gives_the_identity(ca: trustme.CA) -> None:
    leaf, who = pki.server_cert(ca), pki.client_cert(ca)
    server = server_context(
        leaf.private_key_and_cert_chain_pem.bytes(), client_ca=ca.cert_pem.bytes().decode()
    )
    client = client_context(
        ca.cert_pem.bytes(),
        cert=who.cert_chain_pems[0].bytes(),
        key=who.private_key_pem.bytes().decode(),
    )
    s, _ = await handshake(server, client)
    assert s.selected_alpn_protocol() == "h2"
    assert s.version() == "TLSv1.3"

    class Stream:
        def peer_certificate(self) -> dict[str, object] | None:
            return s.getpeercert()

    identity = peer_identity(Stream())
    assert identity is not None and identity.name == "billing.netkit.test"


async def test_tls12_client_gets_an_aead_suite(ca: trustme.CA) -> None:
    leaf = pki.server_cert(ca)
    server = server_context(leaf.private_key_and_cert_chain_pem.bytes())
    client = client_context(ca.cert_pem.bytes())
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    s, _ = await handshake(server, client)
    assert s.version() == "TLSv1.2"
    cipher = s.cipher()
    assert (
        cipher is not None
        and cipher[0].startswith("ECDHE-")
        and ("GCM" in cipher[0] or "CHACHA" in cipher[0])
    )


def test_failed_reload_keeps_the_current_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    files = pki.write(pki.server_cert(ca), tmp_path, "server")
    reloading = ReloadingServerContext(files.cert, files.key)
    before = reloading.current
    files.key.write_text("not a key")
    with pytest.raises(ssl.SSLError):
        reloading.reload()
    assert reloading.current is before and reloading.reloads == 0
    other = pki.server_cert(ca)
    reloading.reload(other.cert_chain_pems[0].bytes(), other.private_key_pem.bytes())
    assert reloading.current is not before and reloading.reloads == 1


async def test_watch_reloads_changed_files(
    ca: trustme.CA, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    files = pki.write(pki.server_cert(ca), tmp_path, "server")
    reloading = ReloadingServerContext(files.cert, files.key)
    async with trio.open_nursery() as nursery:
        await nursery.start(reloading.watch, 1.0)
        await trio.sleep(5)
        assert reloading.reloads == 0
        files.key.write_text("half-written")  # a broken state is logged and skipped
        await trio.sleep(1.5)
        assert reloading.reloads == 0
        new = pki.server_cert(ca)
        pki.write(new, tmp_path, "server")
        await trio.sleep(1.5)
        assert reloading.reloads == 1
        nursery.cancel_scope.cancel()
    _, c = await handshake(reloading.context, client_context(ca.cert_pem.bytes()))
    served = c.getpeercert()
    serial = x509.load_pem_x509_certificate(new.cert_chain_pems[0].bytes()).serial_number
    assert served is not None and int(served["serialNumber"], 16) == serial
