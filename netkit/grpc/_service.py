"""What a gRPC service is to netkit: a set of methods, each with a path and a cardinality.

Generated code (``protoc-gen-netkit``) subclasses :class:`Service` and lists its methods
in ``__rpc_methods__``; hand-written services may do the same. The server looks a call
up by its path (``/package.Service/Method``) in a flat table built from those lists.

Handler signatures, by cardinality (``call`` is the :class:`~netkit.grpc.ServerCall`)::

    UNARY_UNARY    async def M(self, request, call) -> response
    UNARY_STREAM   async def M(self, request, call) -> None       # await call.send(msg)
    STREAM_UNARY   async def M(self, requests, call) -> response  # async for req in requests
    STREAM_STREAM  async def M(self, requests, call) -> None

Streaming responses are sent with ``call.send`` rather than yielded from an async
generator: a generator suspended at ``yield`` inside a nursery or cancel scope breaks
trio's structured cancellation, and ``send`` also gives the handler backpressure.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar

import attrs
from google.protobuf.message import Message


class Cardinality(enum.Enum):
    UNARY_UNARY = "unary_unary"
    UNARY_STREAM = "unary_stream"
    STREAM_UNARY = "stream_unary"
    STREAM_STREAM = "stream_stream"

    @property
    def client_streaming(self) -> bool:
        return self in (Cardinality.STREAM_UNARY, Cardinality.STREAM_STREAM)

    @property
    def server_streaming(self) -> bool:
        return self in (Cardinality.UNARY_STREAM, Cardinality.STREAM_STREAM)


@attrs.frozen
class RPCMethod:
    """One method of a service, as the server dispatches it."""

    #: ``/package.Service/Method``: the HTTP/2 ``:path`` of its calls.
    path: str
    cardinality: Cardinality
    handler: Callable[..., Awaitable[Any]]
    request_type: type[Message]
    response_type: type[Message]

    @property
    def service_name(self) -> str:
        return self.path[1:].rpartition("/")[0]


class Service:
    """Base class of gRPC services (generated ``...Base`` classes derive from it)."""

    #: Fully qualified service name, e.g. ``grpc.health.v1.Health``.
    SERVICE_NAME: ClassVar[str] = ""

    def __rpc_methods__(self) -> Iterable[RPCMethod]:
        raise NotImplementedError(f"{type(self).__name__} lists no RPC methods")


def method_table(services: Iterable[Service]) -> Mapping[str, RPCMethod]:
    """Path -> method for every method of ``services``; a path served twice is an error."""
    table: dict[str, RPCMethod] = {}
    for service in services:
        for method in service.__rpc_methods__():
            if method.path in table:
                raise ValueError(f"{method.path} is served twice")
            table[method.path] = method
    return table
