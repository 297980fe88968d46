"""The opening handshake, checked against the request netkit's HTTP layer parsed.

No I/O here: :func:`check_handshake` looks at a :class:`~netkit.http.Request` and returns
what to answer with (headers for ``accept_tunnel``) and the extensions to run, or raises
:class:`HandshakeRefused` with the status to send instead.

* HTTP/1.1 (RFC 6455 §4.2.1): ``GET`` with ``Upgrade: websocket``, ``Connection: upgrade``,
  ``Sec-WebSocket-Version: 13`` and a ``Sec-WebSocket-Key`` of 16 base64 bytes; answered
  101 with ``Sec-WebSocket-Accept``.
* HTTP/2 (RFC 8441 §4/§5): ``CONNECT`` with ``:protocol websocket`` and version 13; no
  key and no accept (the stream itself proves the server understood); answered 200.

A wrong version gets 426 with ``Sec-WebSocket-Version: 13`` (RFC 6455 §4.4); a target
over ``max_target_size`` 414, more than ``max_header_count`` header fields 431; anything
else malformed gets 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import attrs
from wsproto.extensions import Extension

from ..http import Request
from ._config import WebSocketConfig
from ._errors import HandshakeRefused
from ._extensions import BoundedDeflate

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1(
        key.encode("ascii") + _GUID
    ).digest()  # the RFC's choice, not for security
    return base64.b64encode(digest).decode("ascii")


def _tokens(values: Sequence[str]) -> list[str]:
    return [t.strip().lower() for value in values for t in value.split(",") if t.strip()]


def is_websocket_request(request: Request) -> bool:
    """Does the request ask for WebSocket at all (as opposed to a plain GET on the path)?"""
    if request.http_version == "2":
        return request.method == "CONNECT" and request.protocol == "websocket"
    return "websocket" in _tokens(request.headers.get_all("upgrade"))


@attrs.frozen
class Handshake:
    """What a valid handshake settles: the answer's headers and the session's setup."""

    response_headers: list[tuple[str, str]]
    extensions: list[Extension]
    subprotocol: str | None


def check_handshake(
    request: Request, config: WebSocketConfig, subprotocols: Sequence[str] = ()
) -> Handshake:
    """Validate ``request`` as a WebSocket opening handshake; raise HandshakeRefused if not."""
    headers = request.headers
    # The HTTP layer bounds the whole head (max_header_size, 431); these are the
    # WebSocket endpoint's own, tighter limits, the ones websockets' server applies.
    if len(request.target) > config.max_target_size:
        raise HandshakeRefused(414, "request target too long")
    if len(headers) > config.max_header_count:
        raise HandshakeRefused(431, "too many header fields")
    response: list[tuple[str, str]] = []
    if request.http_version == "2":
        if request.method != "CONNECT" or request.protocol != "websocket":
            raise HandshakeRefused(400, "expected an extended CONNECT with :protocol websocket")
    else:
        if request.method != "GET":
            raise HandshakeRefused(400, "a WebSocket upgrade must be a GET")
        if request.http_version != "1.1":
            raise HandshakeRefused(400, "a WebSocket upgrade needs HTTP/1.1")
        if "websocket" not in _tokens(headers.get_all("upgrade")):
            raise HandshakeRefused(400, "missing Upgrade: websocket")
        if "upgrade" not in _tokens(headers.get_all("connection")):
            raise HandshakeRefused(400, "missing Connection: upgrade")
        key = headers.get("sec-websocket-key")
        if key is None:
            raise HandshakeRefused(400, "missing Sec-WebSocket-Key")
        try:
            raw = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            raise HandshakeRefused(400, "Sec-WebSocket-Key must be 16 bytes in base64")
        response += [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", accept_key(key.strip())),
        ]
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeRefused(
            426, "unsupported WebSocket version", [("sec-websocket-version", "13")]
        )
    extensions: list[Extension] = []
    if config.compression:
        for offer in _offers(headers.get_all("sec-websocket-extensions")):
            if offer.split(";", 1)[0].strip().lower() != "permessage-deflate":
                continue
            deflate = BoundedDeflate(config.max_message_size)
            try:
                params = deflate.accept(offer)
            except ValueError:  # a malformed parameter value: skip this offer
                continue
            if params is None:
                continue
            extensions.append(deflate)
            value = "permessage-deflate" + (f"; {params}" if params else "")
            response.append(("sec-websocket-extensions", value))
            break
    chosen = None
    offered = _tokens(headers.get_all("sec-websocket-protocol"))
    for name in subprotocols:
        if name.lower() in offered:
            chosen = name
            response.append(("sec-websocket-protocol", name))
            break
    return Handshake(response, extensions, chosen)


def _offers(values: Sequence[str]) -> list[str]:
    """Extension offers, one string each (``name; param; param=value``)."""
    return [offer.strip() for value in values for offer in value.split(",") if offer.strip()]
