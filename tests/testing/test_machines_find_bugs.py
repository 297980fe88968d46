"""Each shipped machine passes on netkit and catches a deliberately broken server,
shrinking the failure to a short story (derandomized, bounded examples)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from netkit.balance import BackendState, Balancer, LoadBalancer, MutableBackends
from netkit.discovery import MemoryRegistry
from netkit.rest import MemoryIdempotencyStore
from netkit.testing import (
    BalancerMachine,
    CallMachine,
    CallProbe,
    IdempotencyMachine,
    PubSubMachine,
    RegistryMachine,
    find_failure,
)
from netkit.ws import Hub

# -- broken servers ----------------------------------------------------------------------


class StubbornProbe(CallProbe):
    """Its handler keeps running for 50 s after its call was cancelled or timed out."""

    async def bidi(self, requests: Any, call: Any) -> None:
        try:
            await super().bidi(requests, call)
        except trio.Cancelled:
            self.records[int(str(call.metadata_value("x-call")))].exit = None
            with trio.CancelScope(shield=True):
                await trio.sleep(50)
            raise


class StubbornCalls(CallMachine):
    def make_app(self) -> Any:
        app = super().make_app()
        app.grpc = type(app.grpc)([StubbornProbe(self.records)])
        return app


class DeafHub(Hub):
    """Acknowledges unsubscribe but keeps delivering: an unsubscribed client gets messages."""

    def unsubscribe(self, subscriber: Any, pattern: str) -> None:
        pass


class DeafPubSub(PubSubMachine):
    def make_app(self) -> Any:
        app = super().make_app()
        app.ws.hub = DeafHub()
        app.ws._endpoints.clear()
        app.ws.pubsub(self.PATH)
        return app


class ForgetfulStore(MemoryIdempotencyStore):
    """Never stores a response: a retry runs the handler again."""

    async def complete(self, key: str, fingerprint: str, response: Any) -> None:
        await self.release(key, fingerprint)


class ForgetfulIdempotency(IdempotencyMachine):
    def make_app(self) -> Any:
        app = super().make_app()
        app.rest.idempotency_store = ForgetfulStore(self.TTL, 100)
        return app


class ImmortalRegistry(MemoryRegistry):
    """Its expiry task never runs: instances stay healthy past their TTL."""

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()


class ImmortalRegistryMachine(RegistryMachine):
    def make_registry(self) -> Any:
        return ImmortalRegistry(self.config)


class ClingyLoadBalancer(LoadBalancer):
    """Keeps offering the backends that left: a removed backend still gets picks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gone: list[BackendState] = []

    def update(self, backends: Any, now: float) -> Any:
        change = super().update(backends, now)
        self.gone.extend(change.removed)
        return change

    def candidates(self, now: float, exclude: Any = ()) -> list[BackendState]:
        skip = set(exclude)
        return super().candidates(now, skip) + [s for s in self.gone if s not in skip]


class ClingyBalancer(BalancerMachine):
    def make_balancer(self, source: MutableBackends, probe_factory: Any, rng: Any) -> Balancer:
        balancer = super().make_balancer(source, probe_factory, rng)
        balancer.lb = ClingyLoadBalancer(balancer.lb.strategy, balancer.lb.config)
        return balancer


# -- the checks --------------------------------------------------------------------------

CASES = [
    pytest.param(StubbornCalls, "still runs", 4, id="grpc-handler-outlives-deadline"),
    pytest.param(DeafPubSub, "(patterns [])", 3, id="pubsub-delivers-after-unsubscribe"),
    pytest.param(ForgetfulIdempotency, "not a replay", 3, id="rest-runs-a-retry-twice"),
    pytest.param(ImmortalRegistryMachine, "!=", 3, id="registry-never-expires"),
    pytest.param(ClingyBalancer, "removed", 4, id="balancer-picks-a-removed-backend"),
]


@pytest.mark.parametrize(("machine", "symptom", "max_steps"), CASES)
def test_the_machine_finds_the_planted_bug_and_shrinks_it(
    machine: type[Any], symptom: str, max_steps: int
) -> None:
    failure = find_failure(machine, max_examples=40, stateful_step_count=15)
    assert failure is not None, f"{machine.__name__}: the planted bug was not found"
    assert symptom in str(failure.error), failure.error
    # the initializer plus the few rules that make the bug show
    assert len(failure.steps) <= max_steps, "\n".join(failure.report)


@pytest.mark.parametrize(
    "machine", [CallMachine, PubSubMachine, IdempotencyMachine, BalancerMachine]
)
def test_netkit_passes_the_machine(machine: type[Any]) -> None:
    failure = find_failure(machine, max_examples=25, stateful_step_count=20)
    assert failure is None, "\n".join(failure.report) if failure else ""
