"""The four kinds of client method that generated stubs are made of.

``stub.Method`` is one of these, bound to a channel and a path:

* ``UnaryUnaryMethod``:   ``reply = await stub.M(request, timeout=1.0)``
* ``UnaryStreamMethod``:  ``async with stub.M(request) as replies: async for r in replies``
* ``StreamUnaryMethod``:  ``reply = await stub.M(requests)`` (an iterable or async iterable)
* ``StreamStreamMethod``: ``async with stub.M() as call: await call.send_message(r) ...``

Every kind also has ``open()``, the general form: the call object itself, for metadata,
half-close and status. Streaming calls are context managers so that leaving the block
early cancels the call on the server (RST_STREAM) and leaks no task.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, TypeVar

from google.protobuf.message import Message

from ..wire import StatusCode
from ._channel import Channel, ClientCall
from ._errors import GRPCError, Metadata

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class _Method(Generic[Req, Resp]):
    def __init__(
        self, channel: Channel, path: str, request_type: type[Req], response_type: type[Resp]
    ) -> None:
        self.channel = channel
        self.path = path
        self.request_type = request_type
        self.response_type = response_type

    def open(
        self,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> AbstractAsyncContextManager[ClientCall[Req, Resp]]:
        """The call itself, for full control: ``async with stub.M.open() as call:``."""
        return self.channel.call(
            self.path,
            self.request_type,
            self.response_type,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
        )


async def _single_reply(call: ClientCall[Req, Resp]) -> Resp:
    reply = await call.recv_message()
    if reply is None:
        raise GRPCError(StatusCode.UNIMPLEMENTED, "the server sent no response message")
    if await call.recv_message() is not None:
        raise GRPCError(StatusCode.UNIMPLEMENTED, "the server sent more than one response")
    return reply


class UnaryUnaryMethod(_Method[Req, Resp]):
    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> Resp:
        async with self.open(timeout=timeout, metadata=metadata, compression=compression) as call:
            await call.send_message(request, end=True)
            return await _single_reply(call)


class UnaryStreamMethod(_Method[Req, Resp]):
    @asynccontextmanager
    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> AsyncIterator[ClientCall[Req, Resp]]:
        async with self.open(timeout=timeout, metadata=metadata, compression=compression) as call:
            await call.send_message(request, end=True)
            yield call


class StreamUnaryMethod(_Method[Req, Resp]):
    async def __call__(
        self,
        requests: Iterable[Req] | AsyncIterable[Req],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> Resp:
        async with self.open(timeout=timeout, metadata=metadata, compression=compression) as call:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    await call.send_message(request)
            else:
                for request in requests:
                    await call.send_message(request)
            await call.end()
            return await _single_reply(call)


class StreamStreamMethod(_Method[Req, Resp]):
    def __call__(
        self,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> AbstractAsyncContextManager[ClientCall[Req, Resp]]:
        return self.open(timeout=timeout, metadata=metadata, compression=compression)
