"""gRPC server dispatch: from an HTTP/2 stream to a handler call, and back to a status.

This is the one boundary where a call's outcome becomes a gRPC status, so every way a
call can end is decided here:

* the handler returns                  -> OK (after its response, for unary kinds)
* the handler raises ``GRPCError``     -> that status, message and details
* the handler raises anything else     -> UNKNOWN, logged with the method
* the deadline (``grpc-timeout``) passes -> the handler is cancelled, DEADLINE_EXCEEDED
* the client resets the stream or the connection drops -> the HTTP/2 driver cancels the
  stream's task; the handler's ``finally`` blocks run and nothing is sent.

Every call runs in its HTTP/2 stream's own task (the driver's per-stream nursery), so a
slow call never delays another.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import attrs
import trio

from ..errors import ConnectionClosed, StreamReset
from ..http import HTTPStream
from ..wire import (
    InvalidMetadata,
    InvalidTimeout,
    StatusCode,
    content_type_is_grpc,
    decode_metadata,
    decode_timeout,
)
from ._errors import GRPCError
from ._server_call import ServerCall, check_encoding, refuse
from ._service import RPCMethod, Service, method_table

log = logging.getLogger("netkit.grpc")

Continuation = Callable[[], Awaitable[None]]
ServerInterceptor = Callable[[ServerCall, Continuation], Awaitable[None]]
"""``async def interceptor(call, proceed)``: run code around a call, or refuse it.

Await ``proceed()`` to run the rest of the chain and the handler; raise ``GRPCError``
(e.g. UNAUTHENTICATED) instead to refuse the call. ``call.method``, ``call.metadata``
and ``call.context`` (a dict for passing values to the handler) are available.
"""


@attrs.frozen
class GRPCConfig:
    """Limits of the gRPC server (the defaults are grpcio's)."""

    #: Largest request message accepted (after decompression); larger: RESOURCE_EXHAUSTED.
    max_receive_message_size: int = attrs.field(
        default=4 * 1024 * 1024, validator=attrs.validators.gt(0)
    )
    #: Largest response message sent; larger: RESOURCE_EXHAUSTED.
    max_send_message_size: int = attrs.field(default=2**31 - 1, validator=attrs.validators.gt(0))


class GRPCServer:
    """Serves gRPC services over netkit's HTTP/2 streams (``app.grpc``)."""

    def __init__(
        self,
        services: Iterable[Service] = (),
        *,
        interceptors: Sequence[ServerInterceptor] = (),
        config: GRPCConfig | None = None,
    ) -> None:
        self._services: list[Service] = []
        self._methods: dict[str, RPCMethod] = {}
        self.interceptors = list(interceptors)
        self.config = config or GRPCConfig()
        for service in services:
            self.add_service(service)

    def add_service(self, service: Service) -> None:
        """Serve every method of ``service``."""
        table = method_table([*self._services, service])
        self._services.append(service)
        self._methods = dict(table)

    @property
    def services(self) -> list[Service]:
        return list(self._services)

    @property
    def methods(self) -> dict[str, RPCMethod]:
        return dict(self._methods)

    def serves(self, path: str) -> bool:
        """Is ``path`` one of the served methods (any content type)?"""
        return path in self._methods

    def add_interceptor(self, interceptor: ServerInterceptor) -> None:
        self.interceptors.append(interceptor)

    @staticmethod
    def accepts(stream: HTTPStream) -> bool:
        """Is this request a gRPC call (by its content type)?"""
        return content_type_is_grpc(stream.request.headers.get("content-type"))

    async def __call__(self, stream: HTTPStream) -> None:
        request = stream.request
        if not content_type_is_grpc(request.headers.get("content-type")):
            # The protocol document's answer to a non-gRPC request on a gRPC endpoint.
            body = b"content-type must be application/grpc"
            await stream.respond(415, [("content-type", "text/plain")], body)
            return
        if request.method != "POST" or request.http_version != "2":
            await stream.respond(
                405 if request.method != "POST" else 505,
                [("content-type", "text/plain")],
                b"gRPC calls are POST requests over HTTP/2",
            )
            return
        stream.set_body_limit(None)  # bounded per message instead
        stream.protocol = "grpc"
        method = self._methods.get(request.path)
        if method is not None:
            stream.route = request.path  # a registered method: a bounded label
        try:
            call = self._make_call(stream, method)
        except GRPCError as exc:
            await refuse(stream, exc)
            return
        try:
            await self._run(call)
        except GRPCError as exc:
            call.set_trailing_metadata([*call._trailing, *exc.trailers])
            await call._send_status(exc.code, exc.message, exc.details)

    def _make_call(self, stream: HTTPStream, method: RPCMethod | None) -> ServerCall:
        headers = stream.request.headers
        if method is None:
            raise GRPCError(StatusCode.UNIMPLEMENTED, f"unknown method {stream.request.path}")
        deadline = math.inf
        timeout = headers.get("grpc-timeout")
        if timeout is not None:
            try:
                deadline = trio.current_time() + decode_timeout(timeout)
            except InvalidTimeout as exc:
                raise GRPCError(StatusCode.INTERNAL, f"bad grpc-timeout {timeout!r}") from exc
        encoding = headers.get("grpc-encoding") or "identity"
        check_encoding(encoding)
        try:
            metadata = decode_metadata(headers.raw())
        except InvalidMetadata as exc:
            raise GRPCError(StatusCode.INTERNAL, f"bad metadata: {exc}") from exc
        return ServerCall(
            stream,
            method,
            metadata=metadata,
            deadline=deadline,
            request_encoding=encoding,
            accept_encoding=headers.get("grpc-accept-encoding"),
            max_receive_message_size=self.config.max_receive_message_size,
            max_send_message_size=self.config.max_send_message_size,
        )

    async def _run(self, call: ServerCall) -> None:
        if call.deadline == math.inf:  # no grpc-timeout: no cancel scope to pay for
            await self._run_handler(call)
            return
        with trio.move_on_at(call.deadline) as deadline_scope:
            await self._run_handler(call)
        if deadline_scope.cancelled_caught:
            await call._send_status(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    async def _run_handler(self, call: ServerCall) -> None:
        try:
            await self._intercepted(call, 0)
        except (GRPCError, StreamReset, ConnectionClosed):
            raise  # a status to send, or a client that went away: nothing to log
        except Exception as exc:
            log.exception(
                "gRPC handler failed: %s (stream %d, %s)",
                call.method,
                call._stream.stream_id,
                call._stream.request.authority,
            )
            raise GRPCError(StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}") from exc
        await call._send_status(StatusCode.OK)

    async def _intercepted(self, call: ServerCall, index: int) -> None:
        if index < len(self.interceptors):
            await self.interceptors[index](call, lambda: self._intercepted(call, index + 1))
        else:
            await _invoke(call)


async def _invoke(call: ServerCall) -> None:
    method = call.rpc
    kind = method.cardinality
    request: Any = call._requests() if kind.client_streaming else await call._single_request()
    result = await method.handler(request, call)
    if not kind.server_streaming:
        if result is None:
            raise GRPCError(StatusCode.INTERNAL, f"{method.path} returned no response")
        call._set_reply(result)
