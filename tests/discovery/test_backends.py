"""The same behaviour, against both backends (memory, and a real etcd), in real time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from netkit.discovery import (
    Change,
    ChangeKind,
    Health,
    InstanceNotFound,
    RegistryBackend,
    Snapshot,
    WatchEvent,
)
from tests.discovery.test_registry_grpc import spec


async def eventually(check: Callable[[], object], seconds: float = 6.0) -> None:
    """Poll ``check`` (state in another process: etcd) until true, within ``seconds``."""
    with trio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await trio.sleep(0.05)


async def ids(registry: RegistryBackend, service: str = "orders", **kw: object) -> list[str]:
    return [i.id for i in (await registry.discover(service, **kw))[1]]  # type: ignore[arg-type]


async def test_register_discover_heartbeat_deregister(backend: RegistryBackend) -> None:
    r1, one = await backend.register(spec("orders", "o1"), ttl=5)
    assert one.health is Health.PASSING and one.ttl == 5
    await backend.register(spec("orders", "o2"), ttl=5)
    await backend.register(spec("billing", "b1"), ttl=5)
    assert await ids(backend) == ["o1", "o2"]
    assert await ids(backend, tags=["primary"]) == ["o1", "o2"]
    assert await ids(backend, tags=["absent"]) == []

    await backend.heartbeat("orders", "o1", Health.WARNING)
    await backend.heartbeat("orders", "o2", Health.CRITICAL)
    assert await ids(backend) == ["o1"]
    everyone = (await backend.discover("orders", healthy_only=False))[1]
    assert [(i.id, i.health) for i in everyone] == [("o1", Health.WARNING), ("o2", Health.CRITICAL)]
    await backend.heartbeat("orders", "o2")
    assert await ids(backend) == ["o1", "o2"]

    with pytest.raises(InstanceNotFound):
        await backend.heartbeat("orders", "nobody")
    revision, existed = await backend.deregister("orders", "o1")
    assert existed and revision > r1
    assert not (await backend.deregister("orders", "o1"))[1]
    assert await ids(backend) == ["o2"]


async def test_ttl_turns_critical_then_removes(backend: RegistryBackend) -> None:
    await backend.register(spec("orders", "kept"), ttl=1)
    await backend.register(spec("orders", "lost"), ttl=1)

    async def heartbeats() -> None:
        while True:
            await backend.heartbeat("orders", "kept")
            await trio.sleep(0.3)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeats)
        # critical (hidden, still listed), then removed; "kept" stays passing throughout
        with trio.fail_after(6):
            while await ids(backend) != ["kept"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
        listed = (await backend.discover("orders", healthy_only=False))[1]
        assert [(i.id, i.health) for i in listed if i.id == "lost"] in (
            [("lost", Health.CRITICAL)],
            [],
        )
        with trio.fail_after(8):
            while await ids(backend, healthy_only=False) != ["kept"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await ids(backend) == ["kept"]
        nursery.cancel_scope.cancel()


def replay(events: list[WatchEvent]) -> dict[tuple[str, str], object]:
    state: dict[tuple[str, str], object] = {}
    for event in events:
        if isinstance(event, Snapshot):
            state = {i.key: i.health for i in event.instances}
        elif event.kind is ChangeKind.REMOVED:
            del state[event.instance.key]
        else:
            state[event.instance.key] = event.instance.health
    return state


async def test_watch_resumes_without_missing_a_change(backend: RegistryBackend) -> None:
    await backend.register(spec("orders", "o1"), ttl=5)
    events: list[WatchEvent] = []
    async with backend.watch("orders") as watcher:
        first = await watcher.__anext__()
        assert isinstance(first, Snapshot)
        events.append(first)
        await backend.register(spec("orders", "o2"), ttl=5)
        added = await watcher.__anext__()
        assert isinstance(added, Change) and added.kind is ChangeKind.ADDED
        events.append(added)
    # Disconnected while three changes happen.
    await backend.heartbeat("orders", "o1", Health.CRITICAL)
    await backend.deregister("orders", "o2")
    await backend.register(spec("orders", "o3"), ttl=5)
    async with backend.watch("orders", since=added.revision) as watcher:
        missed: list[WatchEvent] = []
        with trio.fail_after(5):
            while not missed or missed[-1].revision < backend.revision:
                missed.append(await watcher.__anext__())
    kinds = [e.kind for e in missed if isinstance(e, Change)]
    assert kinds == [ChangeKind.HEALTH, ChangeKind.REMOVED, ChangeKind.ADDED]
    everyone = (await backend.discover("orders", healthy_only=False))[1]
    assert replay(events + missed) == {i.key: i.health for i in everyone}
