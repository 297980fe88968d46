"""netkit's pytest plugin (entry point ``pytest11: netkit``), for use with pytest-trio.

Fixtures (async ones need pytest-trio: ``trio_mode = true`` or ``@pytest.mark.trio``;
combine with pytest-trio's ``autojump_clock`` to run timeouts in mock time):

* ``netkit_app`` -- the App under test; override it in your ``conftest.py``
  (default: an empty ``netkit.App()``);
* ``memory_server`` -- a :class:`~netkit.testing.MemoryServer` serving ``netkit_app``
  for the test (``await http1_request(memory_server, "GET", "/")``, ``memory_server.connect()``);
* ``h2_client`` -- netkit's HTTP/2 client connected to it;
* ``grpc_channel`` -- a gRPC channel to it (use your generated stubs on it).

This module imports no hypothesis, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from ..app import App
from ..grpc import Channel
from ..http import H2ClientConnection
from ._memory import MemoryServer, open_grpc_channel, open_h2_client


@pytest.fixture
def netkit_app() -> App:
    """The App the in-memory fixtures serve: override this fixture with your own."""
    return App()


@pytest.fixture
async def memory_server(netkit_app: App, nursery: trio.Nursery) -> MemoryServer:
    server: MemoryServer = await nursery.start(MemoryServer(netkit_app).run)
    return server


@pytest.fixture
async def h2_client(memory_server: MemoryServer) -> AsyncIterator[H2ClientConnection]:
    async with open_h2_client(memory_server) as client:
        yield client


@pytest.fixture
async def grpc_channel(memory_server: MemoryServer) -> AsyncIterator[Channel]:
    async with open_grpc_channel(memory_server) as channel:
        yield channel
