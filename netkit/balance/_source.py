"""Where backends come from: the ``BackendSource`` interface and a static list.

A source is an async iterator of *full snapshots* (every backend that should receive
traffic now). Snapshots rather than deltas keep the adapter for any discovery system
small: a registry watch, DNS polling or a file reload each just turn "what is there
now" into a list, and the balancer works out who joined and who left. A source that
never changes yields once and then waits forever.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Iterable, Sequence

import trio

from ._backend import Backend


def as_backends(backends: Iterable[Backend | str]) -> list[Backend]:
    """``backends`` as Backend objects, the strings parsed (``"host:port;weight=2"``)."""
    return [b if isinstance(b, Backend) else Backend.parse(b) for b in backends]


class BackendSource(abc.ABC):
    """Membership snapshots, as they change (the first one as soon as it is known)."""

    @abc.abstractmethod
    def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        """Yield the full list of backends each time it changes."""


class StaticBackends(BackendSource):
    """A fixed list: ``StaticBackends(["10.0.0.1:8080", Backend("10.0.0.2", 8080)])``."""

    def __init__(self, backends: Iterable[Backend | str]) -> None:
        self.backends = as_backends(backends)

    def __repr__(self) -> str:
        return f"StaticBackends({', '.join(b.address for b in self.backends)})"

    async def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        yield list(self.backends)
        await trio.sleep_forever()


class MutableBackends(BackendSource):
    """A list the program changes itself (``set``); each change is a new snapshot.

    For tests and for programs that learn about backends their own way.
    """

    def __init__(self, backends: Iterable[Backend | str] = ()) -> None:
        self._backends = as_backends(backends)
        self._changed = trio.Event()

    def set(self, backends: Iterable[Backend | str]) -> None:
        self._backends = as_backends(backends)
        self._changed.set()
        self._changed = trio.Event()

    async def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        while True:
            changed = self._changed
            yield list(self._backends)
            await changed.wait()
