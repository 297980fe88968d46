"""``CallMachine``: gRPC calls through their lifecycle, client and server in memory.

netkit's :class:`~netkit.grpc.Channel` calls a bidirectional-streaming probe service
served by an App (``make_app``) over in-memory HTTP/2 connections. Several calls are
open at once and stay open across rules. Rules: ``open_call`` (with or without a
timeout), ``send`` (the payload tells the handler to echo it, to abort with a code, or
to return OK at once), ``half_close``, ``cancel`` (the client leaves the call's block),
and ``advance`` (mock time passes; deadlines fire). A reader task per call receives
everything as it arrives. Every rule settles before the checks.

Invariants, checked after every rule:

1. **One outcome per call, the one the program caused.** The model records what ended
   each call first -- the handler aborted (its code), returned (OK, after the
   half-close or a ``finish``), the deadline passed (DEADLINE_EXCEEDED), the client
   cancelled (a local cancellation) -- and the client saw exactly that, once; a call
   nothing ended has no outcome.
2. **No handler outlives its call.** Once the model says a call ended, its handler has
   returned (or was cancelled); a handler never runs on after a deadline or a cancel.
3. **Messages arrive complete and in order, never after the end.** What the handler
   received is a prefix of what the client sent, what the client received is a prefix
   of what the handler sent, and once a call has its outcome nothing more arrives.

Use your own App (e.g. with interceptors) by overriding :meth:`CallMachine.make_app`;
it must serve :class:`CallProbe` (``PROBE_PATH``) with the machine's ``records``.
netkit's own, larger call test (tests/grpc/test_call_state_machine.py) adds dropped
connections, idle GOAWAYs and races (actions applied before the system settles).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

import attrs
import trio
from google.protobuf.wrappers_pb2 import BytesValue
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, rule

from ..app import App
from ..grpc import (
    Cardinality,
    Channel,
    ClientCall,
    GRPCError,
    RPCMethod,
    ServerCall,
    Service,
    StatusCode,
)
from ._machine import TrioStateMachine
from ._memory import MemoryServer, open_grpc_channel

PROBE_PATH = "/netkit.testing.CallProbe/Bidi"
ABORT_CODES = (StatusCode.NOT_FOUND, StatusCode.PERMISSION_DENIED, StatusCode.ABORTED)


@attrs.define
class HandlerRecord:
    """What one handler invocation saw (written by :class:`CallProbe`)."""

    received: list[bytes] = attrs.field(factory=list)
    sent: list[bytes] = attrs.field(factory=list)
    exit: str | None = None  # "returned", "aborted", "cancelled", "error: ..."


class CallProbe(Service):
    """Echoes each request; ``abort=<code>`` aborts, ``finish`` returns OK at once."""

    SERVICE_NAME = "netkit.testing.CallProbe"

    def __init__(self, records: dict[int, HandlerRecord]) -> None:
        self.records = records

    def __rpc_methods__(self) -> Iterable[RPCMethod]:
        return [RPCMethod(PROBE_PATH, Cardinality.STREAM_STREAM, self.bidi, BytesValue, BytesValue)]

    async def bidi(self, requests: AsyncIterator[BytesValue], call: ServerCall) -> None:
        record = self.records.setdefault(int(str(call.metadata_value("x-call"))), HandlerRecord())
        try:
            async for request in requests:
                record.received.append(request.value)
                command = request.value.split(b"|")[1]
                if command.startswith(b"abort="):
                    record.exit = "aborted"
                    await call.abort(StatusCode(int(command[6:])), "aborted by the program")
                if command == b"finish":
                    break
                record.sent.append(request.value)
                await call.send(BytesValue(value=request.value))
            record.exit = "returned"
        except trio.Cancelled:
            record.exit = "cancelled"
            raise
        except GRPCError:
            raise
        except BaseException as exc:
            record.exit = f"error: {exc!r}"
            raise


@attrs.define(eq=False)
class _Call:
    number: int
    deadline: float
    sent: list[bytes] = attrs.field(factory=list)
    received: list[bytes] = attrs.field(factory=list)
    outcomes: list[StatusCode | str] = attrs.field(factory=list)
    #: What the model says ended the call first.
    expected: StatusCode | str | None = None
    received_after_end: list[bytes] = attrs.field(factory=list)
    scope: trio.CancelScope | None = None
    call: ClientCall[BytesValue, BytesValue] | None = None
    half_closed: bool = False


class CallMachine(TrioStateMachine):
    """See the module docstring."""

    TIMEOUTS: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.5)
    ADVANCES: ClassVar[tuple[float, ...]] = (0.25, 1.0, 3.0)
    calls = Bundle("calls")

    def make_app(self) -> App:
        app = App()
        app.grpc.add_service(CallProbe(self.records))
        return app

    @initialize()
    async def start_channel(self) -> None:
        self.records: dict[int, HandlerRecord] = {}
        self.sides: dict[int, _Call] = {}
        self.numbers = itertools.count()
        self.server: MemoryServer = await self.start(MemoryServer(self.make_app()).run)
        held = await self.hold(open_grpc_channel(self.server))
        self.channel: Channel = held.value

    # -- the client side ---------------------------------------------------------------------
    async def _run_call(self, side: _Call, seconds: float | None, task_status: Any) -> None:
        try:
            async with self.channel.call(
                PROBE_PATH,
                BytesValue,
                BytesValue,
                timeout=seconds,
                metadata=[("x-call", str(side.number))],
            ) as call:
                side.call = call
                async with trio.open_nursery() as nursery:
                    side.scope = nursery.cancel_scope
                    task_status.started()
                    while True:
                        try:
                            message = await call.recv_message()
                        except GRPCError as exc:
                            side.outcomes.append(exc.code)
                            break
                        if message is None:
                            side.outcomes.append(StatusCode.OK)
                            break
                        if side.outcomes:
                            side.received_after_end.append(message.value)
                        side.received.append(message.value)
            if side.scope is not None and side.scope.cancelled_caught and not side.outcomes:
                side.outcomes.append("cancelled")
        except GRPCError as exc:
            if not side.outcomes or side.outcomes[0] != exc.code:
                side.outcomes.append(exc.code)  # a second, different look is a failure

    def _end(self, side: _Call, outcome: StatusCode | str) -> None:
        if side.expected is None:
            side.expected = outcome

    # -- rules -----------------------------------------------------------------------------
    @rule(target=calls, timeout=st.none() | st.sampled_from(TIMEOUTS))
    async def open_call(self, timeout: float | None) -> int:  # noqa: ASYNC109 (the call's)
        number = next(self.numbers)
        deadline = trio.current_time() + timeout if timeout is not None else float("inf")
        side = self.sides[number] = _Call(number, deadline)
        await self.nursery.start(self._run_call, side, timeout)
        return number

    @rule(
        number=calls,
        command=st.sampled_from([b"echo", b"finish", *(b"abort=%d" % c for c in ABORT_CODES)]),
    )
    async def send(self, number: int, command: bytes) -> None:
        side = self.sides[number]
        if side.expected is not None or side.half_closed or side.call is None:
            return
        payload = b"%d:%d|%s" % (number, len(side.sent), command)
        side.sent.append(payload)
        with contextlib.suppress(GRPCError):  # the reader sees the outcome too
            await side.call.send_message(BytesValue(value=payload))
        if command.startswith(b"abort="):
            self._end(side, StatusCode(int(command[6:])))
        elif command == b"finish":
            self._end(side, StatusCode.OK)

    @rule(number=calls)
    async def half_close(self, number: int) -> None:
        side = self.sides[number]
        if side.expected is not None or side.half_closed or side.call is None:
            return
        side.half_closed = True
        with contextlib.suppress(GRPCError):
            await side.call.end()
        self._end(side, StatusCode.OK)

    @rule(number=calls)
    async def cancel(self, number: int) -> None:
        side = self.sides[number]
        if side.scope is not None and side.expected is None:
            side.scope.cancel()
            self._end(side, "cancelled")
        await trio.lowlevel.checkpoint()

    @rule(seconds=st.sampled_from(ADVANCES))
    async def advance(self, seconds: float) -> None:
        now = trio.current_time() + seconds
        for side in self.sides.values():
            if side.expected is None and side.deadline <= now:
                self._end(side, StatusCode.DEADLINE_EXCEEDED)
        await trio.sleep(seconds)

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def each_call_has_the_outcome_the_program_caused(self) -> None:
        for side in self.sides.values():
            expected = [] if side.expected is None else [side.expected]
            assert side.outcomes == expected, (
                f"call {side.number}: outcomes {side.outcomes}, the program caused {expected}"
            )

    @invariant()
    def no_handler_outlives_its_call(self) -> None:
        for side in self.sides.values():
            record = self.records.get(side.number)
            if side.expected is not None and record is not None:
                assert record.exit is not None, (
                    f"call {side.number} ended ({side.expected}), but its handler still runs"
                )

    @invariant()
    def messages_arrive_in_order_and_never_after_the_end(self) -> None:
        for side in self.sides.values():
            record = self.records.get(side.number, HandlerRecord())
            assert side.sent[: len(record.received)] == record.received, (
                f"call {side.number}: handler received {record.received}, client sent {side.sent}"
            )
            assert record.sent[: len(side.received)] == side.received, (
                f"call {side.number}: client received {side.received}, handler sent {record.sent}"
            )
            assert not side.received_after_end, (
                f"call {side.number}: received {side.received_after_end} after its outcome"
            )

    async def cleanup(self) -> None:
        for side in self.sides.values():
            if side.scope is not None:
                side.scope.cancel()
