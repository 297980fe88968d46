"""The opening handshake checks (no I/O) and the config's validation."""

from __future__ import annotations

import attrs
import pytest

import netkit.ws
from netkit.http import Headers, Request
from netkit.ws import HandshakeRefused, WebSocketConfig
from netkit.ws._handshake import accept_key, check_handshake

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(
    method: str = "GET", version: str = "1.1", protocol: str | None = None, **headers: str
) -> Request:
    pairs = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request(method, "/ws", "x", "http", Headers(pairs), version, protocol)


def good(**extra: str) -> Request:
    return request(
        upgrade="websocket",
        connection="keep-alive, Upgrade",
        sec_websocket_version="13",
        sec_websocket_key=KEY,
        **extra,
    )


def test_rfc6455_example_accept_key() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    headers = dict(check_handshake(good(), WebSocketConfig()).response_headers)
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("req", "status"),
    [
        (request(upgrade="websocket", connection="upgrade", sec_websocket_version="13"), 400),
        (
            request(
                upgrade="websocket",
                connection="upgrade",
                sec_websocket_version="13",
                sec_websocket_key="c2hvcnQ=",
            ),
            400,
        ),
        (request(upgrade="websocket", sec_websocket_version="13", sec_websocket_key=KEY), 400),
        (
            request(
                upgrade="websocket",
                connection="upgrade",
                sec_websocket_version="8",
                sec_websocket_key=KEY,
            ),
            426,
        ),
        (
            request(
                "POST",
                upgrade="websocket",
                connection="upgrade",
                sec_websocket_version="13",
                sec_websocket_key=KEY,
            ),
            400,
        ),
        (request("CONNECT", "2", "webtransport", sec_websocket_version="13"), 400),
    ],
)
def test_malformed_handshakes_are_refused(req: Request, status: int) -> None:
    with pytest.raises(HandshakeRefused) as info:
        check_handshake(req, WebSocketConfig())
    assert info.value.status == status
    if status == 426:
        assert ("sec-websocket-version", "13") in info.value.headers


def test_rfc8441_needs_no_key() -> None:
    hs = check_handshake(
        request("CONNECT", "2", "websocket", sec_websocket_version="13"), WebSocketConfig()
    )
    assert hs.response_headers == []


def test_permessage_deflate_is_negotiated_when_offered() -> None:
    offer = "permessage-deflate; client_max_window_bits, x-unknown"
    hs = check_handshake(good(sec_websocket_extensions=offer), WebSocketConfig())
    assert dict(hs.response_headers)["sec-websocket-extensions"].startswith("permessage-deflate")
    assert len(hs.extensions) == 1
    off = check_handshake(good(sec_websocket_extensions=offer), WebSocketConfig(compression=False))
    assert off.extensions == []
    bad = check_handshake(
        good(sec_websocket_extensions="permessage-deflate; server_max_window_bits=99"),
        WebSocketConfig(),
    )
    assert bad.extensions == []


def test_subprotocol_choice() -> None:
    hs = check_handshake(
        good(sec_websocket_protocol="v2.events, v1.events"), WebSocketConfig(), ["v1.events"]
    )
    assert hs.subprotocol == "v1.events"


def test_config_is_frozen_and_validated() -> None:
    config = WebSocketConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.max_message_size = 1  # type: ignore[misc]
    for bad in [
        {"max_message_size": 0},
        {"ping_timeout": -1},
        {"ping_interval": 0},
        {"compression": "yes"},
        {"max_target_size": 0},
        {"max_header_count": -3},
    ]:
        with pytest.raises((ValueError, TypeError)):
            WebSocketConfig(**bad)  # type: ignore[arg-type]


def test_ws_exports_are_complete() -> None:
    import types

    public = {
        n
        for n, o in vars(netkit.ws).items()
        if not n.startswith("_") and not isinstance(o, types.ModuleType)
    }
    assert set(netkit.ws.__all__) == public
