"""WebSocket endpoints on an App: routing, authentication before the upgrade, takeover.

``app.ws.endpoint(path, handler, authenticate=...)`` registers a handler. For each
request on that path the server (1) checks the handshake (400/426 when malformed),
(2) runs the authenticator on the *request* — a refusal is a real HTTP 401/403
response, over HTTP/2 on the CONNECT stream, and no WebSocket ever exists — then
(3) takes the byte stream over with ``HTTPStream.accept_tunnel`` and runs the
handler on a :class:`~netkit.ws.WebSocket`. Plain HTTP requests on the path get 426.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import attrs

from ..http import Headers, HTTPStream, Request
from ..http._stream import error_body
from ._config import WebSocketConfig
from ._errors import HandshakeRefused
from ._handshake import check_handshake, is_websocket_request
from ._hub import Authorizer, Hub
from ._session import Overflow, WebSocket, WebSocketHandler

Authenticator = Callable[["UpgradeRequest"], Awaitable[Any] | Any]
"""``(request) -> principal``; returning None refuses with 401, raising
:class:`HandshakeRefused` refuses with its status (e.g. 403). May be sync or async."""


class UpgradeRequest:
    """What an authenticator sees: the upgrade request, before any WebSocket exists."""

    def __init__(self, request: Request, peer_certificate: dict[str, Any] | None) -> None:
        self.request = request
        #: The client's TLS certificate as ``ssl.SSLSocket.getpeercert()`` gives it, when
        #: the server asked for one (``ssl_context.verify_mode``) and the client sent it.
        self.peer_certificate = peer_certificate

    @property
    def headers(self) -> Headers:
        return self.request.headers

    @property
    def path(self) -> str:
        return self.request.path

    @cached_property
    def query(self) -> dict[str, list[str]]:
        """The query string's parameters (``?token=a&x=1`` -> ``{"token": ["a"], ...}``)."""
        return parse_qs(self.request.query_string, keep_blank_values=True)

    @cached_property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for value in self.request.headers.get_all("cookie"):
            try:
                jar.load(value)
            except CookieError:
                continue
        return {name: morsel.value for name, morsel in jar.items()}

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        value = self.request.headers.get("authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


@attrs.frozen
class Endpoint:
    path: str
    handler: WebSocketHandler
    authenticate: Authenticator | None
    config: WebSocketConfig
    subprotocols: tuple[str, ...]


class WebSocketRoutes:
    """``app.ws``: the WebSocket endpoints of an App and their pub/sub hub."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        #: The pub/sub hub: server code publishes with ``app.ws.hub.publish(...)``.
        self.hub = Hub()

    @property
    def connect_protocols(self) -> frozenset[str]:
        """RFC 8441 protocols to advertise over HTTP/2 (``websocket`` once there is an endpoint)."""
        return frozenset({"websocket"}) if self._endpoints else frozenset()

    def endpoint(
        self,
        path: str,
        handler: WebSocketHandler,
        *,
        authenticate: Authenticator | None = None,
        config: WebSocketConfig | None = None,
        subprotocols: Sequence[str] = (),
    ) -> WebSocketHandler:
        """Serve WebSocket connections on ``path`` with ``handler``."""
        self._endpoints[path] = Endpoint(
            path, handler, authenticate, config or WebSocketConfig(), tuple(subprotocols)
        )
        return handler

    def pubsub(
        self,
        path: str,
        *,
        authenticate: Authenticator | None = None,
        authorize: Authorizer | None = None,
        overflow: Overflow = Overflow.DROP_OLDEST,
        config: WebSocketConfig | None = None,
    ) -> None:
        """Serve the pub/sub envelope protocol (protocols/ws/events.v1.md) on ``path``.

        ``authorize(principal, action, topic)`` decides each subscribe (on the pattern)
        and publish; ``overflow`` is what a subscriber's full outbox does.
        """
        handler = functools.partial(self.hub.serve, authorize=authorize, overflow=overflow)
        self.endpoint(path, handler, authenticate=authenticate, config=config)

    def serves(self, request: Request) -> bool:
        return request.path in self._endpoints

    async def __call__(self, stream: HTTPStream) -> None:
        request = stream.request
        endpoint = self._endpoints[request.path]
        stream.protocol = "websocket"
        stream.route = endpoint.path
        if not is_websocket_request(request):
            headers, body = error_body(426, "this endpoint speaks WebSocket")
            headers += [("upgrade", "websocket"), ("connection", "Upgrade")]
            await stream.respond(426, headers, body)
            return
        try:
            handshake = check_handshake(request, endpoint.config, endpoint.subprotocols)
            principal = None
            if endpoint.authenticate is not None:
                result = endpoint.authenticate(UpgradeRequest(request, stream.peer_certificate()))
                principal = await result if inspect.isawaitable(result) else result
                if principal is None:
                    raise HandshakeRefused(401, "authentication required")
        except HandshakeRefused as exc:
            headers, body = error_body(exc.status, exc.detail)
            await stream.respond(exc.status, [*headers, *exc.headers], body)
            return
        tunnel = await stream.accept_tunnel(handshake.response_headers)
        ws = WebSocket(
            tunnel,
            request=request,
            principal=principal,
            handshake=handshake,
            config=endpoint.config,
        )
        if principal is not None and stream.principal is None:
            stream.principal = principal  # the access log names who it was
        exchange = stream.exchange
        if exchange is None:
            await ws.run(endpoint.handler)
            return
        exchange.websocket_opened()
        try:
            await ws.run(endpoint.handler)
        finally:
            exchange.messages_in += ws.messages_received
            exchange.messages_out += ws.messages_sent
            if ws.closed is not None:
                stream.outcome = str(ws.closed.code)
