"""``netkit call``: a small client for REST, gRPC and WebSocket services.

``netkit call rest METHOD URL [-d JSON] [-H 'Name: value']...``
    one HTTP request (httpx); prints the status line and the body.
``netkit call grpc HOST:PORT package.Service/Method [JSON] [--count N] [--timeout S]``
    one gRPC call of any kind. The method's types come from the server's reflection
    service (``grpc.reflection.v1``), as grpcurl does by default: no .proto file and no
    protoc at run time, and the types are the ones the server really serves. Requests
    are JSON (protobuf's JSON mapping); a list sends one message per element (client and
    bidirectional streaming). Each response is printed as one line of JSON.
``netkit call ws URL [--subscribe PATTERN]... [--send JSON]... [--count N] [--timeout S]``
    a WebSocket session: the events protocol's subscribe messages, then the raw
    messages given, then every message received is printed.

Exit status: 0 on success, 1 when the server answered an error (HTTP >= 400, a gRPC
status other than OK), 2 for bad arguments or when the server cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import trio
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from .errors import NetkitError


class CallFailed(Exception):
    """One line telling why the call could not be made (exit status 2)."""


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CallFailed(f"{what} is not JSON: {exc}") from None


# -- REST ---------------------------------------------------------------------------------
async def call_rest(
    method: str, url: str, data: str | None, headers: Sequence[str], http_timeout: float
) -> int:
    import httpx

    fields = []
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise CallFailed(f"-H expects 'Name: value', got {header!r}")
        fields.append((name.strip(), value.strip()))
    if data is not None and not any(n.lower() == "content-type" for n, _ in fields):
        fields.append(("content-type", "application/json"))
    try:
        async with httpx.AsyncClient(timeout=http_timeout) as client:
            response = await client.request(
                method.upper(),
                url,
                content=data.encode() if data is not None else None,
                headers=fields,
            )
    except httpx.InvalidURL as exc:
        raise CallFailed(f"bad URL {url!r}: {exc}") from None
    except httpx.HTTPError as exc:
        raise CallFailed(f"{method.upper()} {url}: {exc or type(exc).__name__}") from None
    print(f"{response.http_version} {response.status_code} {response.reason_phrase}")
    for name in ("location", "etag", "idempotent-replayed"):
        if name in response.headers:
            print(f"{name}: {response.headers[name]}")
    body = response.text
    if body:
        with contextlib.suppress(ValueError):
            body = json.dumps(response.json(), indent=2)
        print(body)
    return 1 if response.status_code >= 400 else 0


# -- gRPC ---------------------------------------------------------------------------------
async def _reflect(channel: Any, symbol: str) -> descriptor_pool.DescriptorPool:
    """A pool holding ``symbol``'s file and its dependencies, as the server describes them."""
    from .protos.grpc_reflection.v1 import reflection_pb2 as rpb
    from .protos.grpc_reflection.v1.reflection_netkit import ServerReflectionStub

    stub = ServerReflectionStub(channel)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    async with stub.ServerReflectionInfo() as call:
        await call.send_message(rpb.ServerReflectionRequest(file_containing_symbol=symbol))
        answer = await call.recv_message()
        await call.end()
    if answer is None or answer.HasField("error_response"):
        detail = answer.error_response.error_message if answer is not None else "no answer"
        raise CallFailed(f"the server's reflection does not know {symbol}: {detail}")
    for raw in answer.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        proto = files.get(name)
        if proto is None:  # a well-known type the server did not send: protobuf has it
            pool.Add(
                descriptor_pb2.FileDescriptorProto.FromString(
                    descriptor_pool.Default().FindFileByName(name).serialized_pb
                )
            )
            added.add(name)
            return
        for dependency in proto.dependency:
            add(dependency)
        pool.Add(proto)
        added.add(name)

    for name in files:
        add(name)
    return pool


async def call_grpc(
    target: str, method: str, body: str | None, count: int | None, deadline: float | None
) -> int:
    from .grpc import GRPCError, open_channel

    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise CallFailed(f"expected HOST:PORT, got {target!r}")
    service_name, sep, method_name = method.rpartition("/")
    if not sep or not service_name or not method_name:
        raise CallFailed(f"expected package.Service/Method, got {method!r}")
    payload = parse_json(body, "the request") if body else {}
    try:
        async with open_channel(host, int(port)) as channel:
            pool = await _reflect(channel, service_name)
            try:
                service = pool.FindServiceByName(service_name)
            except KeyError:
                raise CallFailed(f"the server does not serve {service_name}") from None
            found = service.methods_by_name.get(method_name)
            if found is None:
                known = ", ".join(m.name for m in service.methods)
                raise CallFailed(f"{service_name} has no method {method_name}; it has {known}")
            request_type = message_factory.GetMessageClass(found.input_type)
            response_type = message_factory.GetMessageClass(found.output_type)
            items = payload if isinstance(payload, list) else [payload]
            if not found.client_streaming and len(items) != 1:
                raise CallFailed(f"{method_name} takes one request, not a list")
            try:
                requests = [json_format.ParseDict(item, request_type()) for item in items]
            except json_format.ParseError as exc:
                raise CallFailed(
                    f"the request does not fit {found.input_type.full_name}: {exc}"
                ) from None
            path = f"/{service_name}/{method_name}"
            try:
                async with channel.call(
                    path, request_type, response_type, timeout=deadline
                ) as call:
                    for request in requests:
                        await call.send_message(request)
                    await call.end()
                    received = 0
                    while count is None or received < count:
                        reply: Message | None = await call.recv_message()
                        if reply is None:
                            break
                        received += 1
                        print(json_format.MessageToJson(reply, indent=None), flush=True)
                    if count is not None and received >= count:
                        await call.cancel()
            except GRPCError as exc:
                print(f"gRPC status {exc.code.name}: {exc.message}", file=sys.stderr)
                return 1
    except (OSError, NetkitError) as exc:
        raise CallFailed(f"cannot call {target}: {exc}") from None
    return 0


# -- WebSocket ----------------------------------------------------------------------------
async def call_ws(
    url: str,
    subscribe: Sequence[str],
    send: Sequence[str],
    count: int | None,
    listen_for: float | None,
) -> int:
    import trio_websocket

    from .wire import ws_envelope as env

    for text in send:
        parse_json(text, "--send")
    try:
        async with trio_websocket.open_websocket_url(url) as ws:
            for n, pattern in enumerate(subscribe, 1):
                await ws.send_message(env.encode_client(env.Subscribe(f"sub-{n}", pattern)))
            for text in send:
                await ws.send_message(text)
            received = 0
            with trio.move_on_after(listen_for if listen_for is not None else float("inf")):
                while count is None or received < count:
                    message = await ws.get_message()
                    received += 1
                    print(message if isinstance(message, str) else message.hex(), flush=True)
    except trio_websocket.HandshakeError as exc:
        raise CallFailed(f"{url}: the WebSocket handshake failed: {exc}") from None
    except trio_websocket.ConnectionClosed as exc:
        print(f"closed: {exc.reason}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        raise CallFailed(f"cannot connect to {url}: {exc}") from None
    return 0
