"""``App``: the one handler that a netkit server runs.

It routes exact ``(method, path)`` pairs to stream handlers and answers 404/405 itself;
requests with a gRPC content type go to ``app.grpc`` (services added with
``app.grpc.add_service``); paths no exact route claims go to ``app.rest`` (JSON resources
added with ``app.rest.route``) once it has routes; WebSocket upgrades (HTTP/1.1 Upgrade or
RFC 8441 extended CONNECT) on paths of ``app.ws`` endpoints go to ``app.ws``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .grpc import GRPCServer
from .http import Handler, HTTPStream
from .http._stream import error_body
from .rest import RestAPI
from .ws import WebSocketRoutes

H = TypeVar("H", bound=Handler)


class App:
    """Routes requests to handlers: ``app.route("GET", "/hello", handler)``."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}
        #: gRPC services on the same port: ``app.grpc.add_service(MyService())``.
        self.grpc = GRPCServer()
        #: REST resources: ``app.rest.route("GET", "/v1/orders/{order_id:int}", get_order)``.
        self.rest = RestAPI()
        #: WebSocket endpoints and the pub/sub hub: ``app.ws.endpoint(path, handler)``.
        self.ws = WebSocketRoutes()

    @property
    def connect_protocols(self) -> frozenset[str]:
        """RFC 8441 protocols for HTTP/2 extended CONNECT (see ``netkit.http``)."""
        return self.ws.connect_protocols

    @overload
    def route(self, method: str, path: str) -> Callable[[H], H]: ...
    @overload
    def route(self, method: str, path: str, handler: H) -> H: ...
    def route(self, method: str, path: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``method path``; usable as a decorator without it."""

        def register(fn: H) -> H:
            self._routes.setdefault(path, {})[method.upper()] = fn
            return fn

        return register(handler) if handler is not None else register

    async def __call__(self, stream: HTTPStream) -> None:
        request = stream.request
        if GRPCServer.accepts(stream) or self.grpc.serves(request.path):
            await self.grpc(stream)
            return
        if self.ws.serves(request):
            await self.ws(stream)
            return
        methods = self._routes.get(request.path)
        if methods is None and self.rest:
            await self.rest(stream)
            return
        if methods is None:
            headers, body = error_body(404, f"no route for {request.path}")
            await stream.respond(404, headers, body)
            return
        stream.route = request.path  # an exact route: the path is its template
        handler = methods.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            headers, body = error_body(405, f"{request.method} not allowed on {request.path}")
            headers.append(("allow", ", ".join(sorted(methods))))
            await stream.respond(405, headers, body)
            return
        await handler(stream)


async def respond_json(stream: HTTPStream, status: int, payload: Any) -> None:
    """Send ``payload`` as an ``application/json`` response."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    await stream.respond(status, [("content-type", "application/json")], body)
