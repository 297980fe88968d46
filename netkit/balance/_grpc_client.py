"""Client-side balancing for gRPC: a channel that picks a subchannel per call.

Theory of operation
-------------------
``open_channel("registry://10.0.0.5:7000/orders")`` (or ``static://...``, or a list)
opens a :class:`BalancedChannel`: a :class:`Balancer` follows the target's backends,
and each backend gets a :class:`Subchannel` -- a netkit ``Channel`` to that one backend
holding one HTTP/2 connection, with gRPC's connectivity states and reconnect backoff
(:mod:`._connectivity`). The channel is IDLE until its first call (or ``connect()``);
from then on every subchannel connects, and one whose connection drops goes IDLE and
reconnects at once, as gRPC's round_robin does; a failed attempt is TRANSIENT_FAILURE
until the backoff has passed.

A call asks the balancer for a backend among the READY subchannels (the strategy,
health and outlier ejection decide, as in the proxy), runs on that subchannel, and
reports its outcome: UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS and DEADLINE_EXCEEDED
count as failures for outlier detection, and the latency feeds peak-EWMA. A call that
could not even start on its subchannel (the connection died after the pick) is retried
transparently on another one -- nothing reached a server. With no READY subchannel
the call waits while some subchannel is connecting (within its deadline and the
channel's ``connect_timeout``) and fails at once with UNAVAILABLE when all of them are
in TRANSIENT_FAILURE (gRPC's default, ``wait_for_ready=False``).
"""

from __future__ import annotations

import math
import random
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from ..errors import ConnectionClosed, NetkitError
from ..grpc import Channel, ChannelConfig, ClientCall, ClientInterceptor, GRPCError, StatusCode
from ..grpc._channel import Req, Resp
from ..grpc._errors import Metadata
from ..http import H2ClientConnection
from ._backend import Backend, BackendState
from ._balancer import MembershipChange, Outcome, make_strategy
from ._config import BalancerConfig
from ._connectivity import Backoff, BackoffConfig, Connectivity, aggregate
from ._health import HealthCheckConfig
from ._runtime import Balancer
from ._source import BackendSource
from ._strategies import Strategy
from ._targets import parse_target

#: Status codes that count against a backend (outlier detection, peak-EWMA's "failed").
FAILURE_CODES = frozenset(
    {
        StatusCode.UNAVAILABLE,
        StatusCode.INTERNAL,
        StatusCode.UNKNOWN,
        StatusCode.DATA_LOSS,
        StatusCode.DEADLINE_EXCEEDED,
    }
)
#: Calls that never started (the picked connection died) are retried this many times.
TRANSPARENT_RETRIES = 3


def outcome_of(code: StatusCode | None) -> Outcome:
    """How a call's status counts for the balancer (None: abandoned, says nothing)."""
    if code is None or code is StatusCode.CANCELLED:
        return Outcome.CANCELLED
    if code in FAILURE_CODES:
        return Outcome.SERVER_ERROR
    return Outcome.SUCCESS


class Subchannel(Channel):
    """One backend's connection, kept by a task with gRPC's states and backoff."""

    def __init__(
        self,
        nursery: trio.Nursery,
        backend: Backend,
        *,
        on_change: Callable[[], None],
        backoff: Backoff,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        config: ChannelConfig | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        super().__init__(
            nursery,
            backend.host,
            backend.port,
            ssl_context=ssl_context,
            server_hostname=server_hostname or (backend.host if ssl_context else None),
            config=config,
            interceptors=interceptors,
        )
        self.backend = backend
        self.state = Connectivity.IDLE
        self.backoff = backoff
        #: When each connection attempt started (trio clock): the backoff schedule.
        self.attempts: list[float] = []
        self._on_change = on_change
        self._wanted = trio.Event()
        self._scope = trio.CancelScope()

    def __repr__(self) -> str:
        return f"Subchannel({self.backend.address}, {self.state.value})"

    def _set(self, state: Connectivity) -> None:
        if state is not self.state:
            self.state = state
            self._on_change()

    def request_connection(self) -> None:
        """Leave IDLE: connect now (no-op once connecting or connected)."""
        self._wanted.set()

    async def run(self) -> None:
        """Keep the connection: connect, back off, reconnect, until shut down."""
        with self._scope:
            await self._wanted.wait()
            while True:
                started = trio.current_time()
                self.attempts.append(started)
                self._set(Connectivity.CONNECTING)
                try:
                    conn = await self._open()
                except (OSError, trio.TooSlowError, NetkitError, ssl.SSLError):
                    self._set(Connectivity.TRANSIENT_FAILURE)
                    await trio.sleep_until(started + self.backoff.next_delay())
                    continue
                self.backoff.reset()
                self._conn = conn
                self._set(Connectivity.READY)
                await _until_unusable(conn)
                self._set(Connectivity.IDLE)  # and reconnect at once (round_robin does)
                if self._conn_done is not None:
                    self._conn_done.set()  # retire it once its calls have finished

    async def _open(self) -> H2ClientConnection:
        """One connection attempt (a test replaces it to script failures)."""
        with trio.fail_after(self.config.connect_timeout):
            conn: H2ClientConnection = await self._nursery.start(self._keep_connection)
            return conn

    async def _connection(self) -> H2ClientConnection:
        conn = self._conn
        if self.state is not Connectivity.READY or conn is None or not conn.is_usable:
            await trio.lowlevel.checkpoint()
            raise GRPCError(StatusCode.UNAVAILABLE, f"{self.backend.address} is not ready")
        await trio.lowlevel.checkpoint()
        return conn

    async def shutdown(self) -> None:
        """The backend left: stop reconnecting; calls in flight finish."""
        self._scope.cancel()
        self._set(Connectivity.SHUTDOWN)
        await self.aclose()


async def _until_unusable(conn: H2ClientConnection) -> None:
    """Wait until ``conn`` takes no new streams (GOAWAY, failure or close)."""
    # The connection wakes its slot waiters on each of those (and on every stream's
    # end); a bounded park also covers any path that does not.
    while conn.is_usable:
        with trio.move_on_after(1.0):
            await conn._slots.park()


class BalancedChannel(Channel):
    """A gRPC channel over many backends: a subchannel per backend, one picked per call.

    Use it like any :class:`~netkit.grpc.Channel` (stubs, ``call``); open it with
    ``open_channel(target)`` or :func:`open_balanced_channel`.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        balancer: Balancer,
        *,
        name: str = "balanced",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        config: ChannelConfig | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        backoff: BackoffConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(nursery, name, 0, config=config, interceptors=interceptors)
        self.authority = name
        self.balancer = balancer
        # The subchannels' reconnect backoff: the channel config's unless given.
        self.backoff_config = backoff or BackoffConfig(
            initial=self.config.backoff_initial,
            multiplier=self.config.backoff_multiplier,
            jitter=self.config.backoff_jitter,
            maximum=self.config.backoff_max,
        )
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._rng = rng or random.Random()
        self.subchannels: dict[Backend, Subchannel] = {}
        self._active = False
        self._changed = trio.Event()
        balancer.add_listener(self._membership)

    # -- state ----------------------------------------------------------------------
    @property
    def state(self) -> Connectivity:
        """The channel's connectivity (IDLE until the first call or ``connect``)."""
        if not self._active:
            return Connectivity.IDLE
        return aggregate(s.state for s in self.subchannels.values())

    async def wait_for_state_change(self, last: Connectivity) -> Connectivity:
        """Wait until :attr:`state` differs from ``last``; return the new state."""
        while self.state is last:
            await self._changed.wait()
        await trio.lowlevel.checkpoint()
        return self.state

    async def wait_changed(self) -> None:
        """Wait for the next change of membership or of any subchannel's state."""
        await self._changed.wait()

    def connect(self) -> None:
        """Leave IDLE: every subchannel starts connecting (the first call does this too)."""
        if not self._active:
            self._active = True
            for sub in self.subchannels.values():
                sub.request_connection()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _membership(self, change: MembershipChange) -> None:
        for state in change.removed:
            sub = self.subchannels.pop(state.backend, None)
            if sub is not None:
                self._nursery.start_soon(sub.shutdown)
        for state in change.added:
            sub = Subchannel(
                self._nursery,
                state.backend,
                on_change=self._notify,
                backoff=Backoff(self.backoff_config, self._rng),
                ssl_context=self._ssl_context,
                server_hostname=self._server_hostname,
                config=self.config,
                interceptors=self.interceptors,
            )
            self.subchannels[state.backend] = sub
            self._nursery.start_soon(sub.run)
            if self._active:
                sub.request_connection()
        self._notify()

    async def _connection(self) -> H2ClientConnection:
        raise GRPCError(StatusCode.INTERNAL, "a balanced channel connects through subchannels")

    async def aclose(self) -> None:
        self._closed = True
        for sub in list(self.subchannels.values()):
            await sub.shutdown()
        await trio.lowlevel.checkpoint()

    # -- picking ----------------------------------------------------------------------
    async def _pick(
        self, deadline: float, tried: Sequence[BackendState]
    ) -> tuple[BackendState, Subchannel]:
        self.connect()
        wait_until = min(deadline, trio.current_time() + self.config.connect_timeout)
        while True:
            if self._closed:
                raise GRPCError(StatusCode.UNAVAILABLE, "channel is closed")
            changed = self._changed
            not_ready = [
                s
                for s in self.balancer.lb.members
                if (sub := self.subchannels.get(s.backend)) is None
                or sub.state is not Connectivity.READY
            ]
            state = self.balancer.pick(exclude=(*not_ready, *tried))
            if state is not None:
                return state, self.subchannels[state.backend]
            waiting = [
                sub
                for sub in self.subchannels.values()
                if sub.state in (Connectivity.IDLE, Connectivity.CONNECTING)
            ]
            if self.balancer.snapshots_applied and not waiting:
                reason = (
                    "no backend"
                    if not self.subchannels
                    else "no backend is ready ("
                    + ", ".join(
                        f"{b.address}: {s.state.value}" for b, s in self.subchannels.items()
                    )
                    + ")"
                )
                raise GRPCError(StatusCode.UNAVAILABLE, f"{self.authority}: {reason}")
            with trio.move_on_at(wait_until) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                if wait_until >= deadline:
                    raise GRPCError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
                raise GRPCError(
                    StatusCode.UNAVAILABLE, f"{self.authority}: no backend ready in time"
                )

    @asynccontextmanager
    async def call(
        self,
        path: str,
        request_type: type[Req],
        response_type: type[Resp],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (gRPC's API: the call's deadline)
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> AsyncIterator[ClientCall[Req, Resp]]:
        """A call on the subchannel the balancer picks (see the module doc)."""
        deadline = trio.current_time() + timeout if timeout is not None else math.inf
        tried: list[BackendState] = []
        while True:
            state, sub = await self._pick(deadline, tried)
            retry = bool(tried)
            started = self.balancer.start(state, retry=retry)
            outcome = Outcome.CANCELLED
            entered = False
            remaining = None if timeout is None else max(deadline - trio.current_time(), 0.0)
            try:
                async with sub.call(
                    path,
                    request_type,
                    response_type,
                    timeout=remaining,
                    metadata=metadata,
                    compression=compression,
                ) as call:
                    entered = True
                    try:
                        yield call
                    finally:
                        outcome = outcome_of(call.code)
                return
            except GRPCError as exc:
                never_started = not entered and exc.code is StatusCode.UNAVAILABLE
                if not never_started or len(tried) >= TRANSPARENT_RETRIES:
                    outcome = outcome_of(exc.code)
                    raise
                # The call never started on that subchannel: nothing reached a server.
                outcome = Outcome.LOCAL_FAILURE
                tried.append(state)
            except (ConnectionClosed, OSError):
                outcome = Outcome.LOCAL_FAILURE
                raise
            finally:
                self.balancer.end(state, started, outcome, retry=retry)


@asynccontextmanager
async def open_balanced_channel(
    target: str | Sequence[str | Backend] | BackendSource,
    *,
    strategy: str | Strategy | None = None,
    balancer_config: BalancerConfig | None = None,
    health: HealthCheckConfig | None = None,
    backoff: BackoffConfig | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    config: ChannelConfig | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
) -> AsyncIterator[BalancedChannel]:
    """A :class:`BalancedChannel` for ``target`` (a target string, a list, or a source).

    ``strategy`` overrides the target's ``?strategy=``; ``balancer_config`` (panic
    threshold, outlier detection...) and ``health`` (active checks, e.g.
    ``HealthCheckConfig(kind="grpc")``) are the proxy's; ``backoff`` is the subchannels'
    reconnect backoff (by default ``config``'s ``backoff_*``: grpcio's defaults).
    """
    if isinstance(target, BackendSource):
        source, name, chosen = target, "balanced", strategy or "round_robin"
    else:
        parsed = parse_target(target)
        source, name, chosen = parsed.source, parsed.name, strategy or parsed.strategy
    balancer = Balancer(
        source,
        make_strategy(chosen) if isinstance(chosen, str) else chosen,
        balancer_config,
        health=health,
    )
    async with trio.open_nursery() as nursery:
        channel = BalancedChannel(
            nursery,
            balancer,
            name=name,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            config=config,
            interceptors=interceptors,
            backoff=backoff,
        )
        nursery.start_soon(balancer.run)
        try:
            yield channel
        finally:
            await channel.aclose()
            nursery.cancel_scope.cancel()
