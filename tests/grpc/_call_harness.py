"""Run a *program* of gRPC call actions against netkit's client and server, in memory.

This is the machinery behind ``test_call_state_machine.py``; the theory is there, the
mechanics are here:

* **Transport.** Every connection is a ``trio.testing.memory_stream_pair`` wrapped in a
  :class:`_Link` that can be *dropped*: both directions break at once, bytes in flight
  are lost, and both ends' pending reads wake up with ``BrokenResourceError`` -- what a
  pulled cable or a dead NAT looks like to both peers. The server end is served by
  netkit's own ``H2Connection`` with a :class:`~netkit.grpc.GRPCServer` as its handler;
  the client end by ``H2ClientConnection.over``.
* **Channel.** :class:`MemoryChannel` is a real :class:`~netkit.grpc.Channel` whose
  ``_connection()`` (the only place a Channel touches the network) opens an in-memory
  link instead of TCP. Everything else -- calls, deadlines, cancellation, status
  mapping -- is the production code. Like the real one, it opens a new connection when
  the current one is no longer usable (after a drop, or the server's idle GOAWAY).
* **Server.** :class:`EchoProbe` is a bidirectional-streaming service that echoes each
  request and obeys commands written into the request payload (abort with a code,
  finish, sleep). It records every call's entry, messages and exit in a
  :class:`Registry`, so the test can see what the handler saw and when it ended.
* **Client.** Each call runs in its own task (:meth:`Interpreter._run_call`) inside
  ``async with channel.call(...)``, with a sender task and a receiver task fed by
  command channels, so a receive that blocks never stops the program.
* **Determinism.** Everything runs on ``MockClock(autojump_threshold=0)``. After each
  action the interpreter waits in ``wait_all_tasks_blocked()``, which trio serves
  *before* it would autojump the clock: so the system settles without time passing,
  and time moves only when the program says so (an ``Advance`` action, or the final
  drain waiting for calls to end). A ``Hurry`` marker skips one settle, so that the
  next action races the reaction to the previous one. Under hypothesis, trio's
  scheduler is seeded by hypothesis too, so a failing program replays exactly.

Causality is checked from timestamps rather than predicted: the interpreter records
when (program step, mock time) each thing that can end a call happened -- the handler
returned or aborted, the deadline passed, the client gave up, the link dropped, or the
server's GOAWAY refused the stream -- and what the client observed, and
:meth:`Interpreter._check_outcome` decides whether the observation is one that the
first cause allows. See the test module for the invariants.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import attrs
import trio
import trio.testing
from google.protobuf.wrappers_pb2 import BytesValue

from netkit.errors import ConnectionClosed, StreamReset
from netkit.grpc import (
    Cardinality,
    Channel,
    ClientCall,
    GRPCError,
    GRPCServer,
    RPCMethod,
    ServerCall,
    Service,
    StatusCode,
)
from netkit.http import ClientConfig, H2ClientConnection, ServerConfig
from netkit.http._h2 import H2Connection

PATH = "/netkit.test.CallProbe/Bidi"
#: Two instants closer than this are "the same time" (grpc-timeout is rounded to 1 µs).
EPS = 1e-5
#: Mock seconds the final drain may take per call before the call counts as hung.
DRAIN_LIMIT = 60.0
#: Mock seconds the whole program may take before it counts as hung.
PROGRAM_LIMIT = 3600.0
#: Mock seconds the connections get to wind down on their own after the channel closes.
SHUTDOWN_LIMIT = 10.0

#: Small flow-control windows (two or three of the largest messages), so that a sender
#: whose peer does not read blocks -- and is cancelled, timed out or dropped while it
#: waits. The server's write_timeout is pushed past any program: a stalled stream that
#: the server resets would be a cause the checks do not model.
SERVER_CONFIG = ServerConfig(h2_initial_window_size=48 * 1024, write_timeout=100_000.0)
CLIENT_CONFIG = ClientConfig(initial_window_size=40 * 1024)

#: netkit bugs this harness found and that are still open, each with an xfail reproducer
#: in the test module. The property test steers around exactly these
#: (``run_program(avoid=...)``), so that it stays green and can keep finding new ones; the
#: reproducers run with ``avoid=()``. Empty now: ``deadline-after-status`` (the deadline
#: passing after the call had its status changed ``call.code``) and
#: ``cancel-after-status`` (``call.cancel()`` after the status did too) are fixed, and
#: their reproducers are regression tests; the steering code stays for the next one.
KNOWN_BUGS: frozenset[str] = frozenset()

# -- the program ------------------------------------------------------------------------


@attrs.frozen
class Echo:
    """The handler echoes the message."""


@attrs.frozen
class Abort:
    """The handler ends the call with ``code`` (no echo)."""

    code: StatusCode


@attrs.frozen
class Finish:
    """The handler returns (OK) although the client may still be sending (no echo)."""


@attrs.frozen
class Sleep:
    """The handler sleeps, then echoes the message."""

    seconds: float


Command: TypeAlias = Echo | Abort | Finish | Sleep


@attrs.frozen
class Open:
    """Open call number ``call`` (numbered in program order), with or without a timeout."""

    call: int
    timeout: float | None


@attrs.frozen
class Send:
    """Send the next request of ``call``: ``size`` filler bytes carrying ``command``."""

    call: int
    size: int
    command: Command


@attrs.frozen
class HalfClose:
    """End ``call``'s requests (the handler's request loop then ends and it returns OK)."""

    call: int


@attrs.frozen
class Receive:
    """Ask for one response (or the status) on ``call``; may block until one comes."""

    call: int


@attrs.frozen
class Cancel:
    """Give up ``call``: ``"leave"`` its block early, or ``"method"`` (``call.cancel()``)."""

    call: int
    how: str = "leave"


@attrs.frozen
class AdvancePastDeadline:
    """Let mock time run until just past ``call``'s deadline (no-op without one)."""

    call: int


@attrs.frozen
class Advance:
    """Let ``seconds`` of mock time pass."""

    seconds: float


@attrs.frozen
class Drop:
    """The current connection drops (both directions, bytes in flight lost)."""


@attrs.frozen
class Hurry:
    """Apply the next action at once, before the system has reacted to the previous one.

    Normally every action is followed by a settle (all tasks idle); this skips one, so
    e.g. a cancel or a drop races the send before it.
    """


Action: TypeAlias = (
    Open | Send | HalfClose | Receive | Cancel | AdvancePastDeadline | Advance | Drop | Hurry
)


def encode_payload(call: int, seq: int, command: Command, size: int) -> bytes:
    """``call:seq:command|filler``: unique per message, and the filler is a pattern that
    depends on both numbers, so a truncated, merged or misrouted message cannot pass as
    the one that was sent."""
    match command:
        case Abort(code=code):
            text = f"abort={int(code)}"
        case Finish():
            text = "finish"
        case Sleep(seconds=seconds):
            text = f"sleep={seconds!r}"
        case _:
            text = "echo"
    filler = bytes((call * 31 + seq * 7 + k) % 251 for k in range(size))
    return f"{call}:{seq}:{text}|".encode() + filler


def decode_command(payload: bytes) -> tuple[int, Command]:
    """The call number and the command of a payload made by :func:`encode_payload`."""
    head = payload.partition(b"|")[0].decode()
    call, _seq, text = head.split(":", 2)
    command: Command
    if text.startswith("abort="):
        command = Abort(StatusCode(int(text.removeprefix("abort="))))
    elif text == "finish":
        command = Finish()
    elif text.startswith("sleep="):
        command = Sleep(float(text.removeprefix("sleep=")))
    else:
        command = Echo()
    return int(call), command


def abort_message(call: int) -> str:
    """The status message of an abort: non-ASCII and ``%`` exercise grpc-message encoding."""
    return f"call {call} aborted ✓ 100%"


# -- the server side --------------------------------------------------------------------


@attrs.define
class HandlerRecord:
    """What one handler invocation saw, written by the handler itself."""

    call: int
    entered_at: float
    received: list[bytes] = attrs.field(factory=list)
    sent: list[bytes] = attrs.field(factory=list)
    #: How it ended: "half-closed" or "finished" (OK), "aborted" (``code``), "cancelled",
    #: "reset", "closed", or "error" (anything else: always a failure of the test).
    exit: str | None = None
    code: StatusCode | None = None
    detail: str = ""
    exited_at: float | None = None
    #: The program step during which it ended.
    exit_step: int = -1

    @property
    def running(self) -> bool:
        return self.exit is None

    @property
    def status(self) -> StatusCode | None:
        """The status the handler's way of ending makes the server send, if any."""
        if self.exit in ("half-closed", "finished"):
            return StatusCode.OK
        if self.exit == "aborted":
            return self.code
        return None

    @property
    def saw_cancellation(self) -> bool:
        return self.exit in ("cancelled", "reset", "closed")


@attrs.define
class Registry:
    """Every handler invocation, by call number (a list: a call must enter only once)."""

    records: dict[int, list[HandlerRecord]] = attrs.field(factory=dict)
    #: The program step being applied (kept up to date by the interpreter).
    step: int = -1

    def enter(self, call: int) -> HandlerRecord:
        record = HandlerRecord(call, trio.current_time())
        self.records.setdefault(call, []).append(record)
        return record

    def get(self, call: int) -> HandlerRecord | None:
        found = self.records.get(call)
        return found[-1] if found else None


class EchoProbe(Service):
    """Echoes each request; the payload can tell it to abort, finish or sleep first."""

    SERVICE_NAME = "netkit.test.CallProbe"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __rpc_methods__(self) -> Iterable[RPCMethod]:
        return [RPCMethod(PATH, Cardinality.STREAM_STREAM, self.bidi, BytesValue, BytesValue)]

    async def bidi(self, requests: AsyncIterator[BytesValue], call: ServerCall) -> None:
        number = int(str(call.metadata_value("x-call") or "-1"))
        record = self.registry.enter(number)
        try:
            async for request in requests:
                record.received.append(request.value)
                _, command = decode_command(request.value)
                match command:
                    case Abort(code=code):
                        record.exit, record.code = "aborted", code
                        await call.abort(code, abort_message(number))
                    case Finish():
                        record.exit = "finished"
                        return
                    case Sleep(seconds=seconds):
                        await trio.sleep(seconds)
                # Recorded first: a send can be cancelled after its bytes were queued.
                record.sent.append(request.value)
                await call.send(BytesValue(value=request.value))
            record.exit = "half-closed"
        except GRPCError as exc:
            if record.exit != "aborted":
                record.exit, record.code, record.detail = "error", exc.code, repr(exc)
            raise
        except trio.Cancelled:
            record.exit = "cancelled"
            raise
        except StreamReset:
            record.exit = "reset"
            raise
        except ConnectionClosed:
            record.exit = "closed"
            raise
        except BaseException as exc:
            record.exit, record.detail = "error", repr(exc)
            raise
        finally:
            record.exited_at = trio.current_time()
            record.exit_step = self.registry.step


# -- the transport --------------------------------------------------------------------


class _Link:
    """An in-memory connection that can be dropped as a whole."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.conn: H2ClientConnection | None = None
        self.dropped = False
        #: When the program dropped it: (step, mock time).
        self.dropped_at = (-1, math.inf)
        client, server = trio.testing.memory_stream_pair()
        self._raw = (client, server)
        self.client = _LinkEnd(self, client)
        self.server = _LinkEnd(self, server)

    def drop(self, step: int) -> None:
        self.dropped = True
        self.dropped_at = (step, trio.current_time())
        for raw in self._raw:
            raw.receive_stream.put_eof()  # wakes a pending read, which then sees the drop


class _LinkEnd(trio.abc.Stream):
    def __init__(self, link: _Link, raw: trio.StapledStream[Any, Any]) -> None:
        self._link = link
        self._raw = raw

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._link.dropped:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the link dropped")
        await self._raw.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._raw.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self._raw.receive_some(max_bytes)
        if self._link.dropped:
            raise trio.BrokenResourceError("the link dropped")
        return bytes(data)

    async def aclose(self) -> None:
        await self._raw.aclose()


class MemoryChannel(Channel):
    """A :class:`Channel` whose connections are in-memory links to an in-process server.

    A test-only adapter: ``Channel`` takes a host and port and has no way to be handed a
    ready connection, so this overrides ``_connection`` -- the one method that opens
    connections -- and keeps the rest of the client untouched.
    """

    def __init__(self, nursery: trio.Nursery, handler: GRPCServer) -> None:
        super().__init__(nursery, "in-memory", 0)
        self._handler = handler
        self.links: list[_Link] = []
        #: The link each task's last call went out on (a call runs in one task).
        self.used: dict[trio.lowlevel.Task, _Link] = {}

    @property
    def link(self) -> _Link | None:
        """The link of the current connection."""
        return self.links[-1] if self.links else None

    async def _connection(self) -> H2ClientConnection:
        conn = await self._usable_connection()
        self.used[trio.lowlevel.current_task()] = next(
            link for link in self.links if link.conn is conn
        )
        return conn

    async def _usable_connection(self) -> H2ClientConnection:
        conn = self._conn
        if conn is not None and conn.is_usable:
            await trio.lowlevel.checkpoint()
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and conn.is_usable:
                return conn  # another call made it while we waited
            if self._closed:
                raise GRPCError(StatusCode.UNAVAILABLE, "channel is closed")
            if self._conn_done is not None:
                self._conn_done.set()  # the old connection's task closes it
            started: H2ClientConnection = await self._nursery.start(self._keep_link)
            self._conn = started
            return started

    async def _keep_link(
        self, task_status: trio.TaskStatus[H2ClientConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        done = self._conn_done = trio.Event()
        link = _Link(len(self.links))
        self.links.append(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, link)
            async with H2ClientConnection.over(
                link.client, authority="in-memory", config=CLIENT_CONFIG
            ) as conn:
                link.conn = conn
                task_status.started(conn)
                await done.wait()

    async def _serve(self, link: _Link) -> None:
        conn = H2Connection(link.server, self._handler, SERVER_CONFIG, scheme="http")
        try:
            await conn.run()
        finally:
            await trio.aclose_forcefully(link.server)


# -- the client side and the checks ------------------------------------------------------


class Violation(AssertionError):
    """An invariant failed; the message has the program and the log of what happened."""


@attrs.frozen
class Observation:
    """Something the client saw that says how the call ended."""

    kind: str  # "status": the call API reported a status; "cancel": we gave the call up
    code: StatusCode
    message: str
    #: Where it was seen: "recv" (``recv_message``), "send" (``send_message``/``end``
    #: raised), "block" (leaving ``channel.call``: it raised, or we left it early),
    #: "cancel()" (we called it).
    source: str
    step: int
    time: float


@attrs.frozen
class Cause:
    """Something that ends a call, and what the client should then see."""

    kind: str  # "server", "deadline", "cancel", "drop", "refused" (by the server's GOAWAY)
    code: StatusCode
    step: int
    time: float

    @property
    def expected(self) -> tuple[str, StatusCode]:
        return ("cancel" if self.kind == "cancel" else "status", self.code)


@attrs.define(eq=False)
class CallSide:
    """The client's view of one call, kept by the interpreter."""

    number: int
    timeout: float | None
    opened_at: float
    opened_step: int
    deadline: float
    send_tx: trio.MemorySendChannel[Send | HalfClose]
    send_rx: trio.MemoryReceiveChannel[Send | HalfClose]
    recv_tx: trio.MemorySendChannel[str]
    recv_rx: trio.MemoryReceiveChannel[str]
    #: The number of the link the call runs on (-1 until its block is entered).
    link: int = -1
    call: ClientCall[BytesValue, BytesValue] | None = None
    scope: trio.CancelScope | None = None
    #: Every request handed to ``send_message``, in order (sent or not).
    attempted: list[bytes] = attrs.field(factory=list)
    received: list[bytes] = attrs.field(factory=list)
    observations: list[Observation] = attrs.field(factory=list)
    causes: list[Cause] = attrs.field(factory=list)
    crashes: list[str] = attrs.field(factory=list)
    half_closed: bool = False
    cancelled: bool = False
    #: The test left (is leaving) the block before the call ended.
    leaving: bool = False
    block_exited_at: float | None = None
    first_code: StatusCode | None = None
    observed: trio.Event = attrs.field(factory=trio.Event)
    exited: trio.Event = attrs.field(factory=trio.Event)

    @property
    def open(self) -> bool:
        return self.block_exited_at is None


class _ErrorLog(logging.Handler):
    """Collects ERROR records: the server must never log a handler failure here."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = f": {record.exc_info[1]!r}" if record.exc_info else ""
        self.records.append(f"{record.name}: {record.getMessage()}{exc}")


@contextmanager
def _capture_errors() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    logger = logging.getLogger("netkit")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Interpreter:
    """Applies a program's actions one by one and checks the invariants after each."""

    def __init__(
        self,
        program: Sequence[Action],
        registry: Registry,
        avoid: frozenset[str],
    ) -> None:
        self.program = list(program)
        self.avoid = avoid
        self.registry = registry
        #: Set by ``_run`` once their nurseries are open.
        self.channel: MemoryChannel
        self.nursery: trio.Nursery
        self.calls: dict[int, CallSide] = {}
        self._step = -1
        #: (step, mock time) after each action: when the clock passed which instant.
        self.timeline: list[tuple[int, float]] = []
        #: The steps after which the system settled (all but those before a Hurry).
        self.settles: list[int] = []
        self.log: list[str] = []

    @property
    def step(self) -> int:
        """The program step being applied (``len(program)`` during the final drain)."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = self.registry.step = value

    # -- reporting -------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.log.append(f"[step {self.step} t={trio.current_time():.6f}] {text}")

    def fail(self, problem: str) -> Violation:
        program = "\n".join(f"  {i}: {action!r}" for i, action in enumerate(self.program))
        log = "\n".join(self.log[-60:])
        return Violation(f"{problem}\nprogram:\n{program}\nlog (last 60):\n{log}")

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        for step, action in enumerate(self.program):
            self.step = step
            if isinstance(action, Hurry):
                continue
            self.note(f"apply {action!r}")
            await self._apply(action)
            self.timeline.append((self.step, trio.current_time()))
            following = self.program[self.step + 1 : self.step + 2]
            if following and isinstance(following[0], Hurry):
                continue  # no settle, and no checks: the system is mid-reaction
            await trio.testing.wait_all_tasks_blocked()
            self.settles.append(self.step)
            self._check_all()
        self.step = len(self.program)
        await self._drain()
        self._check_all(final=True)

    async def _apply(self, action: Action) -> None:
        match action:
            case Open():
                self._open(action)
            case Send() | HalfClose():
                side = self.calls.get(action.call)
                if side is None or not side.open or side.half_closed or side.cancelled:
                    self.note("  skipped: not sendable")
                    return
                if isinstance(action, HalfClose):
                    side.half_closed = True
                side.send_tx.send_nowait(action)
            case Receive():
                side = self.calls.get(action.call)
                if side is None or not side.open:
                    self.note("  skipped: no open call")
                    return
                side.recv_tx.send_nowait("one")
            case Cancel():
                await self._cancel(action)
            case AdvancePastDeadline():
                side = self.calls.get(action.call)
                if side is None or not trio.current_time() < side.deadline < math.inf:
                    self.note("  skipped: no deadline ahead")
                    return
                await trio.sleep_until(side.deadline + 1e-3)
            case Advance(seconds=seconds):
                await trio.sleep(seconds)
            case Drop():
                link = self.channel.link
                if link is None or link.dropped:
                    self.note("  skipped: no live link")
                    return
                link.drop(self.step)
                for side in self.calls.values():
                    if side.open and side.link == link.number:
                        self._add_drop(side, link)
            case Hurry():
                pass

    def _open(self, action: Open) -> None:
        send_tx, send_rx = trio.open_memory_channel[Send | HalfClose](1000)
        recv_tx, recv_rx = trio.open_memory_channel[str](1000)
        now = trio.current_time()
        side = CallSide(
            number=action.call,
            timeout=action.timeout,
            opened_at=now,
            opened_step=self.step,
            deadline=now + action.timeout if action.timeout is not None else math.inf,
            send_tx=send_tx,
            send_rx=send_rx,
            recv_tx=recv_tx,
            recv_rx=recv_rx,
        )
        self.calls[action.call] = side
        self.nursery.start_soon(self._run_call, side)

    async def _cancel(self, action: Cancel) -> None:
        side = self.calls.get(action.call)
        if side is None or not side.open or side.cancelled:
            self.note("  skipped: nothing to cancel")
            return
        call = side.call
        if call is None or side.scope is None:
            self.note("  skipped: the call has not started yet")
            return
        now = trio.current_time()
        if action.how == "method" and "cancel-after-status" in self.avoid and call.code is not None:
            self.note("  skipped: known bug cancel-after-status")
            return
        if (
            action.how == "method"
            and "deadline-after-status" in self.avoid
            and now >= side.deadline
        ):
            # The deadline's cancellation is due but not delivered yet (Hurry): it would
            # turn the CANCELLED that cancel() sets into DEADLINE_EXCEEDED.
            self.note("  skipped: known bug deadline-after-status")
            return
        side.cancelled = True
        self._add_cause(side, Cause("cancel", StatusCode.CANCELLED, self.step, now))
        if action.how == "method":
            # cancel() decides the status on the spot (CANCELLED), if it had none.
            if not side.observations:
                self._observe(side, "cancel", StatusCode.CANCELLED, "", "cancel()")
            await call.cancel()
            self._leave_once_ended(side)
        else:
            # Leaving the block: its exit says how the call ended (a local cancellation,
            # or a status that was due at that instant, such as the deadline's).
            side.leaving = True
            side.scope.cancel()

    async def _drain(self) -> None:
        """End every call that is still open: half-close, read to the status, leave.

        Calls that already have an outcome are read once more too: a receive after the
        end must report the same status again.
        """
        for side in self.calls.values():
            if not side.open:
                continue
            self.note(f"drain call {side.number}")
            if not side.observations and not side.half_closed and not side.cancelled:
                side.half_closed = True
                side.send_tx.send_nowait(HalfClose(side.number))
            side.recv_tx.send_nowait("all")
            with trio.move_on_after(DRAIN_LIMIT) as scope:
                await side.observed.wait()
            if scope.cancelled_caught:
                raise self.fail(f"call {side.number} did not end within {DRAIN_LIMIT} s")
            await trio.testing.wait_all_tasks_blocked()
            self._check_all()
        for side in self.calls.values():
            side.send_tx.close()
            side.recv_tx.close()
        with trio.move_on_after(DRAIN_LIMIT) as scope:
            for side in self.calls.values():
                await side.exited.wait()
        if scope.cancelled_caught:
            stuck = [side.number for side in self.calls.values() if side.open]
            raise self.fail(f"call blocks {stuck} were not left after their commands ended")

    # -- one call, client side -------------------------------------------------------------
    async def _run_call(self, side: CallSide) -> None:
        try:
            async with self.channel.call(
                PATH,
                BytesValue,
                BytesValue,
                timeout=side.timeout,
                metadata=[("x-call", str(side.number))],
            ) as call:
                side.call = call
                link = self.channel.used[trio.lowlevel.current_task()]
                side.link = link.number
                if link.dropped:  # it started on a link dropped a moment ago (Hurry)
                    self._add_drop(side, link)
                async with trio.open_nursery() as nursery:
                    side.scope = nursery.cancel_scope
                    nursery.start_soon(self._sender, side, call)
                    nursery.start_soon(self._receiver, side, call)
            if side.leaving and not side.observations:
                self._observe(side, "cancel", StatusCode.CANCELLED, "", "block")
        except GRPCError as exc:
            tried = self.channel.used.get(trio.lowlevel.current_task())
            if side.link == -1 and tried is not None and tried.dropped:
                self._add_drop(side, tried)  # it could not even start on the dropped link
            self._observe(side, "status", exc.code, exc.message, "block")
        except Exception as exc:
            side.crashes.append(f"leaving the call block: {exc!r}")
        finally:
            side.block_exited_at = trio.current_time()
            self.note(f"call {side.number}: block exited")
            side.exited.set()

    async def _sender(self, side: CallSide, call: ClientCall[BytesValue, BytesValue]) -> None:
        async for command in side.send_rx:
            try:
                if isinstance(command, HalfClose):
                    await call.end()
                    self.note(f"call {side.number}: half-closed")
                else:
                    payload = encode_payload(
                        side.number, len(side.attempted), command.command, command.size
                    )
                    side.attempted.append(payload)
                    await call.send_message(BytesValue(value=payload))
                    self.note(f"call {side.number}: sent {payload[:24]!r} ({len(payload)} B)")
            except GRPCError as exc:
                self._observe(side, "status", exc.code, exc.message, "send")
            except Exception as exc:
                side.crashes.append(f"sending {command!r}: {exc!r}")

    async def _receiver(self, side: CallSide, call: ClientCall[BytesValue, BytesValue]) -> None:
        async for how in side.recv_rx:
            while True:
                try:
                    message = await call.recv_message()
                except GRPCError as exc:
                    self._observe(side, "status", exc.code, exc.message, "recv")
                    break
                except Exception as exc:
                    side.crashes.append(f"receiving: {exc!r}")
                    break
                if message is None:
                    self._observe(side, "status", StatusCode.OK, "", "recv")
                    break
                self.note(f"call {side.number}: received {message.value[:24]!r}")
                side.received.append(message.value)
                if how == "one":
                    break

    def _observe(
        self, side: CallSide, kind: str, code: StatusCode, message: str, source: str
    ) -> None:
        self.note(f"call {side.number}: observed {kind} {code.name} {message!r} ({source})")
        now = trio.current_time()
        side.observations.append(Observation(kind, code, message, source, self.step, now))
        side.observed.set()
        self._leave_once_ended(side)

    def _leave_once_ended(self, side: CallSide) -> None:
        """KNOWN_BUGS ``deadline-after-status``: leave a call's block once it has a status."""
        call = side.call
        if (
            "deadline-after-status" in self.avoid
            and side.deadline < math.inf
            and call is not None
            and call.code is not None
            and side.scope is not None
            and not side.scope.cancel_called
        ):
            self.note(f"call {side.number}: leaving the block (known bug deadline-after-status)")
            side.scope.cancel()

    # -- causes ----------------------------------------------------------------------------
    def _add_drop(self, side: CallSide, link: _Link) -> None:
        step, time = link.dropped_at
        self._add_cause(side, Cause("drop", StatusCode.UNAVAILABLE, step, time))

    def _add_cause(self, side: CallSide, cause: Cause) -> None:
        if all(c.kind != cause.kind for c in side.causes):
            side.causes.append(cause)

    def _collect_causes(self, side: CallSide) -> None:
        """Record the causes that happened by themselves (server status, deadline)."""
        record = self.registry.get(side.number)
        if record is None and self._refused(side):
            # Refused streams fail from the start: the refusal crossed the open.
            cause = Cause("refused", StatusCode.UNAVAILABLE, side.opened_step, side.opened_at)
            self._add_cause(side, cause)
        if record is not None and record.status is not None and record.exited_at is not None:
            cause = Cause("server", record.status, record.exit_step, record.exited_at)
            self._add_cause(side, cause)
        exited = side.block_exited_at if side.block_exited_at is not None else math.inf
        if side.deadline <= trio.current_time() + EPS and side.deadline <= exited + EPS:
            # The step during which the clock passed the deadline.
            step = next((s for s, t in self.timeline if t >= side.deadline - EPS), self.step)
            cause = Cause("deadline", StatusCode.DEADLINE_EXCEEDED, step, side.deadline)
            self._add_cause(side, cause)

    def _refused(self, side: CallSide) -> bool:
        """Did the server's GOAWAY refuse this call's stream (it never processed it)?

        That happens when a call opens just as the server closes an idle connection: the
        server drops the HEADERS it had not read yet and its GOAWAY's last stream id says
        so. (It reads ``ClientCall._stream``: the call's HTTP/2 stream id is not public.)
        """
        if side.link < 0 or side.call is None or side.call._stream is None:
            return False
        goaway = self.channel.links[side.link].conn
        received = goaway.goaway_received if goaway is not None else None
        return received is not None and side.call._stream.stream_id > received.last_stream_id

    def _settled(self, start: int, end: int) -> bool:
        """Did the system settle after step ``start`` and before step ``end``?"""
        return any(start <= step < end for step in self.settles)

    # -- the invariants ---------------------------------------------------------------------
    def _check_all(self, *, final: bool = False) -> None:
        for side in self.calls.values():
            self._collect_causes(side)
            self._check_call(side, final=final)

    def _check_call(self, side: CallSide, *, final: bool) -> None:
        n = side.number
        if side.crashes:
            raise self.fail(f"call {n}: the client API raised a non-gRPC error: {side.crashes}")
        records = self.registry.records.get(n, [])
        if len(records) > 1:
            raise self.fail(f"call {n}: {len(records)} handler invocations")
        record = records[0] if records else None
        refused = any(cause.kind == "refused" for cause in side.causes)
        if record is None and not side.observations and not refused:
            raise self.fail(f"call {n}: open, but its handler never started")
        if record is not None:
            if record.exit == "error":
                raise self.fail(f"call {n}: the handler failed: {record.code} {record.detail}")
            self._check_messages(side, record)
        self._check_outcome(side, record)
        if record is not None:
            self._check_handler_ended(side, record)
        if final:
            if not side.observations:
                raise self.fail(f"call {n}: the program ended and the call has no outcome")
            if side.open:
                raise self.fail(f"call {n}: its block is still open")
            if record is not None and record.running:
                raise self.fail(f"call {n}: its handler outlived the program")

    def _check_messages(self, side: CallSide, record: HandlerRecord) -> None:
        """Complete and in order, both ways: each side got a prefix of what was sent."""
        n = side.number
        if side.attempted[: len(record.received)] != record.received:
            raise self.fail(
                f"call {n}: the server received {_short(record.received)}, "
                f"not a prefix of what was sent {_short(side.attempted)}"
            )
        if record.sent[: len(side.received)] != side.received:
            raise self.fail(
                f"call {n}: the client received {_short(side.received)}, "
                f"not a prefix of what the server sent {_short(record.sent)}"
            )
        if record.exit == "half-closed" and record.received != side.attempted:
            raise self.fail(
                f"call {n}: the handler saw the half-close after {_short(record.received)}, "
                f"but {_short(side.attempted)} was sent"
            )

    def _check_outcome(self, side: CallSide, record: HandlerRecord | None) -> None:
        """One outcome per call, and the one its first cause calls for."""
        n = side.number
        call = side.call
        if call is not None and call.code is not None:
            if side.first_code is None:
                side.first_code = call.code
            elif call.code != side.first_code:
                raise self.fail(
                    f"call {n}: call.code changed from {side.first_code.name} to {call.code.name}"
                )
        if not side.observations:
            return
        first = side.observations[0]
        for later in side.observations[1:]:
            if later.code != first.code:
                raise self.fail(f"call {n}: two outcomes: {first} then {later}")
        if call is not None and first.kind == "status" and call.code != first.code:
            code = call.code.name if call.code is not None else None
            raise self.fail(f"call {n}: saw {first.code.name}, but call.code is {code}")

        before = sorted(
            (c for c in side.causes if (c.step, c.time) <= (first.step, first.time + EPS)),
            key=lambda c: (c.step, c.time),
        )
        if not before:
            raise self.fail(f"call {n}: saw {first} although nothing ended the call")
        head = before[0]
        tied = [c for c in before if c.step == head.step and abs(c.time - head.time) <= EPS]
        allowed = {c.expected for c in tied}
        # The client had not looked yet when the first cause struck, so giving the call
        # up or its deadline passing afterwards may still be what it sees; and a drop
        # with no settle since the first cause may have lost the status in flight.
        allowed |= {c.expected for c in before if c.kind in ("cancel", "deadline")}
        allowed |= {
            c.expected for c in before if c.kind == "drop" and not self._settled(head.step, c.step)
        }
        if (first.kind, first.code) not in allowed:
            raise self.fail(
                f"call {n}: saw {first.kind} {first.code.name}, but the causes "
                f"{before} allow only {sorted(allowed)}"
            )
        server = next((c for c in tied if c.kind == "server"), None)
        if server is None or first.kind != "status" or first.code != server.code:
            return
        expected = abort_message(n) if server.code != StatusCode.OK else ""
        if first.message != expected:
            raise self.fail(f"call {n}: status message {first.message!r}, sent {expected!r}")
        # A status read from the server comes after every response the server sent.
        if first.source == "recv" and record is not None and side.received != record.sent:
            raise self.fail(
                f"call {n}: read the status after {_short(side.received)}, "
                f"but the server sent {_short(record.sent)}"
            )

    def _check_handler_ended(self, side: CallSide, record: HandlerRecord) -> None:
        """No handler outlives its call, and one whose call was given up saw it."""
        if not side.causes:
            return
        head = min(side.causes, key=lambda c: (c.step, c.time))
        if record.running:
            raise self.fail(f"call {side.number}: ended by {head}, but its handler still runs")
        assert record.exited_at is not None
        over_first = record.status is not None and record.exited_at <= head.time + EPS
        if head.kind != "server" and not over_first and not record.saw_cancellation:
            raise self.fail(
                f"call {side.number}: ended by {head}, but its handler ended with "
                f"{record.exit!r} instead of seeing the cancellation"
            )


def _short(payloads: Sequence[bytes]) -> list[str]:
    """Payloads by their ``call:seq:command`` head and length, for readable failures."""
    return [f"{p.partition(b'|')[0].decode()}+{len(p)}" for p in payloads]


async def _run(program: Sequence[Action], avoid: frozenset[str]) -> Interpreter:
    registry = Registry()
    server = GRPCServer([EchoProbe(registry)])
    interpreter = Interpreter(program, registry, avoid)
    phase = "the program"
    closed_at = math.inf
    with trio.move_on_after(PROGRAM_LIMIT) as limit:
        async with trio.open_nursery() as channel_nursery:
            interpreter.channel = MemoryChannel(channel_nursery, server)
            async with trio.open_nursery() as calls:
                interpreter.nursery = calls
                await interpreter.run()
            phase = "closing the channel"
            await interpreter.channel.aclose()
            closed_at = trio.current_time()
            # Nothing is cancelled here: every connection must wind down on its own.
        if trio.current_time() - closed_at > SHUTDOWN_LIMIT:
            raise interpreter.fail(f"the connections took over {SHUTDOWN_LIMIT} s to close")
    if limit.cancelled_caught:
        raise interpreter.fail(f"{phase} hung: still running after {PROGRAM_LIMIT} s")
    return interpreter


def run_program(program: Sequence[Action], *, avoid: Iterable[str] = KNOWN_BUGS) -> Interpreter:
    """Run ``program`` in a fresh trio loop on a MockClock; raise :class:`Violation`.

    ``avoid`` names the :data:`KNOWN_BUGS` to steer around; ``()`` runs the program as is.
    """
    avoid = frozenset(avoid)
    unknown = avoid - KNOWN_BUGS
    assert not unknown, f"not known bugs: {unknown}"
    with _capture_errors() as errors:
        try:
            interpreter = trio.run(
                _run, program, avoid, clock=trio.testing.MockClock(autojump_threshold=0)
            )
        except BaseExceptionGroup as group:
            # A violation raised inside the nurseries: hand it back on its own.
            violations = group.subgroup(Violation)
            if violations is None:
                raise
            leaf: BaseException = violations
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
    if errors.records:
        raise interpreter.fail(f"netkit logged errors: {errors.records}")
    return interpreter
