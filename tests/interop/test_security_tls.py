"""TLS and mutual TLS with netkit.security's contexts, against peers we did not write
(httpx, curl, grpcio) and netkit's own clients.

Each test runs a server with ``server_context``/``ReloadingServerContext`` built from a
throwaway trustme CA and checks who gets in: a client without the CA fails, a client
without a certificate is refused where mTLS is required, an expired certificate is
refused, and a reloaded certificate reaches new connections.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trio
import trustme

from netkit import RestClient, Server
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from netkit.security import ReloadingServerContext, client_context, server_context
from netkit.ws import connect_events
from tests.helpers import running_server
from tests.interop.peers import run_tool
from tests.security import pki
from tests.security.apps import CERT_NAME, UNARY, make_app

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> dict[str, Any]:
    """PEM files: the CA, the server's certificate, a client's, an expired client's."""
    return {
        "ca": pki.ca_file(ca, tmp_path),
        "server": pki.write(pki.server_cert(ca), tmp_path, "server"),
        "client": pki.write(pki.client_cert(ca), tmp_path, "client"),
        "expired": pki.write(pki.expired_client_cert(ca), tmp_path, "expired"),
    }


def mtls_server_context(files: dict[str, Any], *, required: bool = True) -> ssl.SSLContext:
    return server_context(
        files["server"].cert,
        files["server"].key,
        client_ca=files["ca"],
        require_client_cert=required,
    )


def url(server: Server, path: str) -> str:
    return f"https://127.0.0.1:{server.port}{path}"


# -- httpx ----------------------------------------------------------------------------------
@pytest.mark.parametrize("http2", [False, True])
async def test_httpx_with_client_certificate_is_the_principal(
    files: dict[str, Any], http2: bool
) -> None:
    client = client_context(files["ca"], cert=files["client"].cert, key=files["client"].key)
    async with (
        running_server(make_app(), ssl_context=mtls_server_context(files)) as server,
        httpx.AsyncClient(verify=client, http2=http2, timeout=5) as http,
    ):
        response = await http.get(url(server, "/v1/whoami"))
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.json() == {"principal": CERT_NAME, "method": "mtls", "peer": CERT_NAME}


async def test_httpx_without_client_certificate_is_refused(files: dict[str, Any]) -> None:
    async with running_server(make_app(), ssl_context=mtls_server_context(files)) as server:
        async with httpx.AsyncClient(verify=client_context(files["ca"]), timeout=5) as http:
            with pytest.raises(httpx.TransportError):
                await http.get(url(server, "/v1/whoami"))
        # The server is still there for a client that has one.
        good = client_context(files["ca"], cert=files["client"].cert, key=files["client"].key)
        async with httpx.AsyncClient(verify=good, timeout=5) as http:
            assert (await http.get(url(server, "/v1/whoami"))).status_code == 200


async def test_httpx_without_the_ca_fails(files: dict[str, Any]) -> None:
    other = trustme.CA()
    async with running_server(make_app(), ssl_context=mtls_server_context(files)) as server:
        context = client_context(other.cert_pem.bytes())
        async with httpx.AsyncClient(verify=context, timeout=5) as http:
            with pytest.raises(httpx.ConnectError) as failed:
                await http.get(url(server, "/v1/whoami"))
    assert isinstance(_root_cause(failed.value), ssl.SSLCertVerificationError)


def _root_cause(error: BaseException) -> BaseException:
    while (cause := error.__cause__ or error.__context__) is not None:
        error = cause
    return error


async def test_optional_client_certificate_falls_back_to_tokens(files: dict[str, Any]) -> None:
    context = mtls_server_context(files, required=False)
    async with (
        running_server(make_app(), ssl_context=context) as server,
        httpx.AsyncClient(verify=client_context(files["ca"]), timeout=5) as http,
    ):
        anonymous = await http.get(url(server, "/v1/whoami"))
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith('Bearer realm="netkit"')
        token = await http.get(
            url(server, "/v1/whoami"), headers={"authorization": "Bearer bob-token"}
        )
        assert token.json() == {"principal": "bob", "method": "bearer", "peer": None}


# -- curl -----------------------------------------------------------------------------------
async def test_curl_with_and_without_client_certificate(curl: str, files: dict[str, Any]) -> None:
    async with running_server(make_app(), ssl_context=mtls_server_context(files)) as server:
        target = url(server, "/v1/whoami")
        ok = await run_tool(
            [
                curl, "-sS", "--http2", "--cacert", str(files["ca"]),
                "--cert", str(files["client"].cert), "--key", str(files["client"].key), target,
            ]
        )  # fmt: skip
        assert CERT_NAME.encode() in ok.stdout
        refused = await run_tool([curl, "-sS", "--cacert", str(files["ca"]), target], check=False)
        assert refused.returncode != 0
        expired = await run_tool(
            [
                curl, "-sS", "--cacert", str(files["ca"]),
                "--cert", str(files["expired"].cert), "--key", str(files["expired"].key), target,
            ],
            check=False,
        )  # fmt: skip
        assert expired.returncode != 0
        no_ca = await run_tool([curl, "-sS", target], check=False)
        assert no_ca.returncode == 60  # peer certificate cannot be authenticated


async def test_curl_refuses_tls_1_1_and_cbc_suites(curl: str, files: dict[str, Any]) -> None:
    """The server's floor is TLS 1.2 with AEAD suites only."""
    context = server_context(files["server"].cert, files["server"].key)
    async with running_server(make_app(), ssl_context=context) as server:
        target = url(server, "/healthz")
        base = [curl, "-sS", "--cacert", str(files["ca"])]
        old = await run_tool([*base, "--tlsv1.0", "--tls-max", "1.1", target], check=False)
        assert old.returncode != 0
        cbc = await run_tool(
            [*base, "--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-SHA", target], check=False
        )
        assert cbc.returncode != 0
        modern = await run_tool([*base, "-w", "%{http_version}", "-o", "/dev/null", target])
        assert modern.stdout == b"2"  # ALPN picked h2


# -- grpcio ---------------------------------------------------------------------------------
def _grpcio_unary(port: int, files: dict[str, Any], *, with_cert: bool) -> bytes:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files["ca"].read_bytes(),
        private_key=files["client"].key.read_bytes() if with_cert else None,
        certificate_chain=files["client"].cert.read_bytes() if with_cert else None,
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        call = channel.unary_unary(
            UNARY,
            request_serializer=echo_pb2.EchoRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )
        reply: echo_pb2.EchoResponse = call(echo_pb2.EchoRequest(payload=b"whoami"), timeout=5)
        return reply.payload


async def test_grpcio_presents_a_client_certificate(files: dict[str, Any]) -> None:
    async with running_server(make_app(), ssl_context=mtls_server_context(files)) as server:
        payload = await trio.to_thread.run_sync(
            lambda: _grpcio_unary(server.port, files, with_cert=True)
        )
        assert payload == CERT_NAME.encode()
        with pytest.raises(grpc.RpcError) as refused:
            await trio.to_thread.run_sync(
                lambda: _grpcio_unary(server.port, files, with_cert=False)
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


# -- netkit's own clients -------------------------------------------------------------------
async def test_netkit_clients_present_client_certificates(files: dict[str, Any]) -> None:
    def context(alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
        client = files["client"]
        return client_context(files["ca"], cert=client.cert, key=client.key, alpn=alpn)

    async with running_server(make_app(), ssl_context=mtls_server_context(files)) as server:
        async with RestClient(f"https://127.0.0.1:{server.port}", verify=context()) as rest:
            assert (await rest.get("/v1/whoami"))["principal"] == CERT_NAME
        async with open_channel("127.0.0.1", server.port, ssl_context=context()) as channel:
            reply = await EchoStub(channel).Unary(echo_pb2.EchoRequest(payload=b"whoami"))
            assert reply.payload == CERT_NAME.encode()
        ws_url = f"wss://127.0.0.1:{server.port}/v1/events"
        # trio-websocket speaks HTTP/1.1 only: its context must not offer h2.
        ws_context = context(alpn=("http/1.1",))
        async with connect_events(ws_url, ssl_context=ws_context, ping_interval=None) as events:
            await events.subscribe("orders.eu")  # the certificate holds orders:read
        # Without a certificate, the gRPC channel cannot connect at all.
        bare = client_context(files["ca"])
        async with open_channel("127.0.0.1", server.port, ssl_context=bare) as channel:
            with pytest.raises(GRPCError) as failed:
                await EchoStub(channel).Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=5)
            assert failed.value.code == StatusCode.UNAVAILABLE


# -- reload -----------------------------------------------------------------------------------
async def test_reloaded_certificate_reaches_new_connections_only(
    curl: str, ca: trustme.CA, files: dict[str, Any], tmp_path: Path
) -> None:
    """Swap the server's files to a certificate of another CA and reload: curl trusting
    the old CA now fails and one trusting the new CA succeeds; a connection opened before
    the reload keeps working on its old certificate."""
    new_ca = trustme.CA()
    new_ca_file = pki.ca_file(new_ca, tmp_path, "new-ca")
    reloading = ReloadingServerContext(files["server"].cert, files["server"].key)
    async with running_server(make_app(), ssl_context=reloading.context) as server:
        target = url(server, "/healthz")
        old_trust = [curl, "-sS", "-o", "/dev/null", "--cacert", str(files["ca"]), target]
        new_trust = [curl, "-sS", "-o", "/dev/null", "--cacert", str(new_ca_file), target]
        await run_tool(old_trust)
        assert (await run_tool(new_trust, check=False)).returncode == 60
        async with httpx.AsyncClient(verify=client_context(files["ca"]), timeout=5) as kept:
            assert (await kept.get(target)).status_code == 200
            pki.write(pki.server_cert(new_ca), tmp_path, "server")  # same paths, new content
            reloading.reload()
            assert reloading.reloads == 1
            await run_tool(new_trust)
            assert (await run_tool(old_trust, check=False)).returncode == 60
            assert (await kept.get(target)).status_code == 200  # its connection lives on
