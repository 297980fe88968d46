"""Discovery fixtures: one etcd for the session, and a started registry per backend."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from netkit.discovery import EtcdRegistry, MemoryRegistry, RegistryBackend, RegistryConfig
from tests.discovery.etcd import Etcd

_prefixes = itertools.count()
#: Short, real-time timings that both backends honour (etcd leases are whole seconds).
REAL_TIME = RegistryConfig(
    min_ttl=1.0, deregister_critical_after=1.0, self_preservation_threshold=None
)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    server = Etcd(tmp_path_factory.mktemp("etcd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "etcd"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RegistryBackend]:
    """A running registry of each kind; etcd ones get a prefix of their own."""
    registry: RegistryBackend
    if request.param == "memory":
        registry = MemoryRegistry(REAL_TIME)
    else:
        etcd: Etcd = request.getfixturevalue("etcd")
        prefix = f"/test/{next(_prefixes)}/{request.node.name}/"
        registry = EtcdRegistry("127.0.0.1", etcd.port, prefix=prefix, config=REAL_TIME)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):
            await nursery.start(registry.run)
        yield registry
        nursery.cancel_scope.cancel()


@pytest.fixture
def etcd_dir(tmp_path: Path) -> Path:
    return tmp_path / "etcd"
