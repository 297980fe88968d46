"""``RegistryBackends``: the balancer's backends, as the registry knows them.

A minimal adapter from a :class:`~netkit.discovery.DiscoveryClient` (a Watch-fed local
copy of the registry) to the balancer's :class:`~netkit.balance.BackendSource`: each
time the client applies a change, the healthy instances of the service become a new
snapshot (repeated snapshots are skipped). When the registry-fed source of
``netkit.balance`` lands on main, ``netkit up`` switches to it; this is the seam.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import trio

from ..balance import Backend, BackendSource
from ..discovery import Change, DiscoveryClient, Snapshot


class RegistryBackends(BackendSource):
    """Healthy instances of ``service`` (passing or warning) as balancer backends.

    The client must be running (``await nursery.start(client.run)``). An instance's
    metadata weight becomes the backend's weight (at least 1).
    """

    def __init__(self, client: DiscoveryClient, service: str, *, protocol: str = "h2") -> None:
        self.client = client
        self.service = service
        self.protocol = protocol
        self._changed = trio.Event()
        client.on_event(self._on_event)

    def _on_event(self, event: Change | Snapshot) -> None:
        self._changed.set()

    def current(self) -> list[Backend]:
        return [
            Backend(
                i.address.host,
                i.address.port,
                weight=max(1, i.metadata.weight),
                protocol=self.protocol,
            )
            for i in self.client.instances(self.service)
        ]

    async def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        last: list[Backend] | None = None
        while True:
            self._changed = trio.Event()  # before reading: a change from now on wakes us
            current = self.current()
            if current != last:
                last = current
                yield current
            await self._changed.wait()
