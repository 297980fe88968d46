"""WebSocket over TLS with client certificates (a throwaway trustme CA): the authenticator
sees the peer certificate before the upgrade, over HTTP/1.1 (the websockets client) and
HTTP/2 (h2 doing RFC 8441 over TLS with ALPN h2); no certificate means 401."""

from __future__ import annotations

import ssl
from typing import Any

import h2.events
import pytest
import trio
import trustme
import websockets.exceptions
import wsproto.frame_protocol as fp
from websockets.trio.client import connect

import netkit
from netkit.ws import UpgradeRequest, WebSocket
from tests.helpers import RawH2, running_server
from tests.interop.test_ws_peers import _connect_headers

pytestmark = pytest.mark.interop


def common_name(cert: dict[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def by_certificate(request: UpgradeRequest) -> str | None:
    """The principal is the client certificate's common name; no certificate: 401."""
    cert = request.peer_certificate
    return None if cert is None else common_name(cert)


async def whoami(ws: WebSocket) -> None:
    await ws.send(f"hello {ws.principal}")
    async for message in ws:
        await ws.send(message)


def app() -> netkit.App:
    application = netkit.App()
    application.ws.endpoint("/me", whoami, authenticate=by_certificate)
    return application


@pytest.fixture
def mtls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """Asks for a client certificate (optional: the authenticator decides) from our CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(
    ca: trustme.CA, name: str | None, alpn: list[str] | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if name is not None:
        ca.issue_cert(f"{name}.clients.test", common_name=name).configure_cert(context)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


async def test_http11_authenticator_sees_the_client_certificate(
    ca: trustme.CA, mtls_server_context: ssl.SSLContext
) -> None:
    async with running_server(app(), ssl_context=mtls_server_context) as server:
        url = f"wss://localhost:{server.port}/me"
        with trio.fail_after(10):
            async with connect(url, ssl=client_context(ca, "alice")) as ws:
                assert await ws.recv() == "hello alice"
                for message in ["over tls", b"\x00" * 70_000]:  # the non-descriptor path
                    await ws.send(message)
                    assert await ws.recv() == message
            # Without a certificate the same endpoint refuses with a real 401.
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with connect(url, ssl=client_context(ca, None)):
                    pass
            assert info.value.response.status_code == 401


async def test_h2_rfc8441_authenticator_sees_the_client_certificate(
    ca: trustme.CA, mtls_server_context: ssl.SSLContext
) -> None:
    async with running_server(app(), ssl_context=mtls_server_context) as server:
        with trio.fail_after(10):
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            tls = trio.SSLStream(
                tcp, client_context(ca, "bob", ["h2"]), server_hostname="localhost"
            )
            await tls.do_handshake()
            assert tls.selected_alpn_protocol() == "h2"
            client = RawH2(tls)
            try:
                client.conn.initiate_connection()
                await client.flush()
                await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
                sid = client.conn.get_next_available_stream_id()
                headers = [
                    (k, "https" if k == ":scheme" else v) for k, v in _connect_headers("/me")
                ]
                client.conn.send_headers(sid, headers)
                await client.flush()
                response = await client.until(
                    lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                )
                assert dict(response.headers)[b":status"] == b"200"
                proto = fp.FrameProtocol(client=True, extensions=[])
                data = await client.until(
                    lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == sid
                )
                proto.receive_bytes(data.data)
                assert [f.payload for f in proto.received_frames()] == ["hello bob"]
            finally:
                await trio.aclose_forcefully(tls)
