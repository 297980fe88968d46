"""Strategies produce what netkit's parsers accept; fault schedules change timing only
(or fail cleanly); the pytest plugin's fixtures serve an App in memory."""

from __future__ import annotations

import contextlib

import h11
import pytest
import trio
import wsproto.frame_protocol as fp
from hypothesis import given
from hypothesis import strategies as st

import netkit
from netkit.examples.grpc_echo import app as echo_app
from netkit.examples.hello import app as hello_app
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from netkit.protos.etcd.v3 import etcd_pb2
from netkit.protos.grpc_testing import messages_pb2
from netkit.testing import (
    FaultSchedule,
    FaultyStream,
    HTTPRequestSpec,
    MemoryServer,
    fault_schedules,
    grpc_metadata,
    grpc_timeouts,
    http1_request,
    http_requests,
    protobuf_messages,
    pubsub_envelopes,
    serve_in_memory,
    ws_frames,
)
from netkit.wire import decode_timeout
from netkit.wire import ws_envelope as env
from netkit.wire.grpc_metadata import decode_metadata, encode_metadata


@given(http_requests())
def test_drawn_requests_are_valid_http1(spec: HTTPRequestSpec) -> None:
    server = h11.Connection(h11.SERVER)
    server.receive_data(spec.to_http1())
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert request.method.decode() == spec.method and request.target.decode() == spec.target


@given(grpc_metadata())
def test_drawn_metadata_round_trips(pairs: list[tuple[str, str | bytes]]) -> None:
    decoded = decode_metadata(encode_metadata(pairs))
    assert [(k, v) for k, v in decoded] == pairs


@given(grpc_timeouts())
def test_drawn_timeouts_decode(value: str) -> None:
    assert decode_timeout(value) >= 0


@given(ws_frames())
def test_drawn_frames_reassemble_in_wsproto(frames: list) -> None:
    proto = fp.FrameProtocol(client=False, extensions=[])
    proto.receive_bytes(b"".join(f.to_bytes() for f in frames))
    data: list[str | bytes] = []
    for frame in proto.received_frames():
        if frame.opcode in (fp.Opcode.TEXT, fp.Opcode.BINARY, fp.Opcode.CONTINUATION):
            data.append(frame.payload)
    joined = "".join(data) if data and isinstance(data[0], str) else b"".join(data)  # type: ignore[arg-type]
    payload = b"".join(f.payload for f in frames if f.opcode in (0, 1, 2))
    expected = payload.decode() if frames[0].opcode == 1 else payload
    assert joined == expected


@given(pubsub_envelopes())
def test_drawn_envelopes_round_trip(message: env.ClientMessage) -> None:
    assert env.decode_client(env.encode_client(message)) == message


@pytest.mark.parametrize(
    "cls", [messages_pb2.SimpleRequest, messages_pb2.StreamingOutputCallRequest, etcd_pb2.RequestOp]
)
@given(data=st.data())
def test_drawn_protobufs_round_trip(cls: type, data: st.DataObject) -> None:
    message = data.draw(protobuf_messages(cls))
    assert cls.FromString(message.SerializeToString()) == message


@given(schedule=fault_schedules(), spec=http_requests(methods=["GET"]))
async def test_timing_faults_do_not_change_answers(
    schedule: FaultSchedule, spec: HTTPRequestSpec
) -> None:
    async with serve_in_memory(hello_app) as server:
        plain = await http1_request(server, spec.method, "/hello")
        faulty = await http1_request(
            server, "GET", "/hello", wrap=lambda s: FaultyStream(s, schedule)
        )
    assert plain == faulty and plain[0] == 200


@given(drop=st.integers(0, 60))
async def test_a_dropped_connection_fails_cleanly_and_the_server_goes_on(drop: int) -> None:
    schedule = FaultSchedule(drop_after=drop)
    async with serve_in_memory(hello_app) as server:
        # the client's side of the dropped connection; any other failure fails the test
        with contextlib.suppress(trio.BrokenResourceError):
            await http1_request(server, "GET", "/hello", wrap=lambda s: FaultyStream(s, schedule))
        assert (await http1_request(server, "GET", "/hello"))[0] == 200


@given(at=st.integers(0, 20))
async def test_a_corrupted_request_line_gets_a_clear_error(at: int) -> None:
    schedule = FaultSchedule(corrupt_at=at, corrupt_mask=0x80)
    async with serve_in_memory(hello_app) as server:
        status, _, _ = await http1_request(
            server, "GET", "/hello", wrap=lambda s: FaultyStream(s, schedule)
        )
        assert status in (400, 404, 405, 501)


@pytest.fixture
def netkit_app() -> netkit.App:
    return echo_app


async def test_plugin_fixtures_serve_the_app(
    memory_server: MemoryServer, grpc_channel: netkit.grpc.Channel, autojump_clock: object
) -> None:
    reply = await EchoStub(grpc_channel).Unary(echo_pb2.EchoRequest(payload=b"hi"), timeout=5)
    assert reply.payload == b"hi"
    assert memory_server.connections == 1
