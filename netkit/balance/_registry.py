"""``RegistryBackends``: a :class:`BackendSource` fed by the service registry's Watch.

It runs a :class:`~netkit.discovery.DiscoveryClient` for one service and turns every
watch event the client applies into a fresh snapshot (when the set of backends it
implies changed), so an instance registering, deregistering, expiring or turning
critical reaches the balancer with the event that reported it -- no polling. The
client resumes its watch from the last revision after a disconnection, so no change
is missed while the registry restarts; until the first event arrives the source
yields nothing (the balancer has no members yet, and callers wait or fail fast).

Which instances become backends: the healthy ones (passing or warning: the registry's
healthy discovery), optionally only those with all of ``tags``; each instance's
``metadata.weight`` is its weight, and weight 0 means "send nothing" (drained).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

import trio

from ._backend import Backend
from ._source import BackendSource


class RegistryBackends(BackendSource):
    """The healthy instances of ``service`` in the registry at ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        service: str,
        *,
        tags: Iterable[str] = (),
        protocol: str = "auto",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        interceptors: Sequence[Any] = (),
    ) -> None:
        self.host, self.port, self.service = host, port, service
        #: How to reach a TLS and/or authenticating registry (``DiscoveryClient``'s
        #: keywords: a client context, and e.g. ``[CallCredentials(...)]``).
        self.channel_options: dict[str, Any] = {
            "ssl_context": ssl_context,
            "server_hostname": server_hostname,
            "interceptors": tuple(interceptors),
        }
        self.tags = tuple(tags)
        self.protocol = protocol
        #: Watch events seen, and the registry revision of the last snapshot yielded.
        self.events = 0
        self.revision = 0

    def __repr__(self) -> str:
        return f"RegistryBackends({self.host}:{self.port}, {self.service!r})"

    async def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        from ..discovery import DiscoveryClient

        client = DiscoveryClient(self.host, self.port, self.service, **self.channel_options)
        event = trio.Event()

        def on_event(_: object) -> None:
            self.events += 1
            event.set()

        client.on_event(on_event)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            last: list[Backend] | None = None
            while True:
                await event.wait()
                event = trio.Event()  # no checkpoint since the wait: nothing slips by
                current = self._backends(client)
                if current != last:
                    last = current
                    self.revision = client.revision
                    yield list(current)

    def _backends(self, client: object) -> list[Backend]:
        from ..discovery import DiscoveryClient

        assert isinstance(client, DiscoveryClient)
        return [
            Backend(
                i.address.host, i.address.port, weight=i.metadata.weight, protocol=self.protocol
            )
            for i in client.instances(self.service, tags=self.tags)
            if i.metadata.weight > 0
        ]
