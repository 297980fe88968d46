"""Client-side balancing for REST: an httpx transport that picks a backend per attempt.

``RestClient("registry://10.0.0.5:7000/orders")`` (or ``static://...``) builds a
:class:`BalancedTransport` around httpx's own transport. Each request -- each attempt
of a call: the RestClient retries through the transport -- is sent to the backend the
balancer picks, with the URL's host and port replaced (the ``Host`` header keeps the
target's name); attempts of one call avoid the backends they already tried (the
client hands the list along in the request's ``netkit.tried`` extension), so a retry
goes to another backend while there is one. The backend counts the request as
outstanding until its response body is closed; a transport failure or a 5xx counts
against it for outlier detection, and the time to the response head feeds peak-EWMA.

The balancer follows the target in a task that lives while the client is open
(``async with RestClient(...)``); a static target works without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import httpx
import trio

from ._backend import BackendState
from ._balancer import Outcome, make_strategy
from ._runtime import Balancer
from ._source import StaticBackends
from ._targets import parse_target

#: The request extension carrying a call's tried backends across its attempts.
TRIED = "netkit.tried"


class BalancedTransport(httpx.AsyncBaseTransport):
    """Sends each request to a backend chosen by ``balancer``, through ``inner``."""

    def __init__(
        self,
        balancer: Balancer,
        inner: httpx.AsyncBaseTransport,
        *,
        scheme: str = "http",
        first_snapshot_timeout: float = 5.0,
    ) -> None:
        self.balancer = balancer
        self.inner = inner
        self.scheme = scheme
        self.first_snapshot_timeout = first_snapshot_timeout
        self._stack: AsyncExitStack | None = None
        if isinstance(balancer.source, StaticBackends):
            # Usable at once, without ``async with``: a static list needs no task.
            balancer.lb.update(balancer.source.backends, 0.0)
            balancer.snapshots_applied += 1

    @classmethod
    def for_target(
        cls, target: str, inner: httpx.AsyncBaseTransport
    ) -> tuple[BalancedTransport, str]:
        """The transport for a target string, and the base URL the client should use."""
        parsed = parse_target(target)
        balancer = Balancer(parsed.source, make_strategy(parsed.strategy))
        return cls(balancer, inner), f"http://{parsed.name}"

    async def __aenter__(self) -> BalancedTransport:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        nursery.start_soon(self.balancer.run)
        self._stack = stack
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            await self.inner.__aexit__(exc_type, exc, tb)
        finally:
            stack, self._stack = self._stack, None
            if stack is not None:
                await stack.aclose()

    async def aclose(self) -> None:
        await self.__aexit__()

    async def _wait_for_backends(self) -> None:
        if self.balancer.snapshots_applied:
            return
        if self._stack is None:
            raise RuntimeError("a registry target needs `async with RestClient(...)`")
        with trio.move_on_after(self.first_snapshot_timeout):
            while not self.balancer.snapshots_applied:
                await self.balancer.wait_changed()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._wait_for_backends()
        tried: list[BackendState] = request.extensions.get(TRIED, [])
        state = self.balancer.pick(exclude=tuple(tried))
        if state is None and tried:
            state = self.balancer.pick()  # every backend was tried: any may take it again
        if state is None:
            raise httpx.ConnectError("no backend available", request=request)
        retry = bool(tried)
        tried.append(state)
        backend = state.backend
        request.url = request.url.copy_with(
            scheme=self.scheme, host=backend.host, port=backend.port
        )
        started = self.balancer.start(state, retry=retry)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            failed = isinstance(exc, httpx.TransportError)
            self.balancer.end(
                state, started, Outcome.LOCAL_FAILURE if failed else Outcome.CANCELLED, retry=retry
            )
            raise
        outcome = Outcome.SERVER_ERROR if response.status_code >= 500 else Outcome.SUCCESS
        head_latency = trio.current_time() - started
        response.stream = _Tracked(
            response.stream, self, state, started, head_latency, outcome, retry
        )
        return response


class _Tracked(httpx.AsyncByteStream):
    """A response body that ends its request for the balancer once closed."""

    def __init__(
        self,
        inner: Any,
        transport: BalancedTransport,
        state: BackendState,
        started: float,
        latency: float,
        outcome: Outcome,
        retry: bool,
    ) -> None:
        self.inner = inner
        self.transport = transport
        self.state = state
        self.started = started
        self.latency = latency
        self.outcome = outcome
        self.retry = retry
        self.ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except httpx.TransportError:
            self.outcome = Outcome.LOCAL_FAILURE
            raise

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            if not self.ended:
                self.ended = True
                # Outstanding until the body was closed; the latency is the time to the
                # response head (what peak-EWMA compares).
                self.transport.balancer.end(
                    self.state, self.started, self.outcome, latency=self.latency, retry=self.retry
                )
