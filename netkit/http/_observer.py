"""The HTTP layer's observer hook: what a server reports to metrics, traces and logs.

The HTTP layer knows nothing of Prometheus or logging; it calls an object with these
methods when one was given to :func:`netkit.serve` (``observer=``) and does nothing
else when none was: each call site costs one ``is not None`` check when observation
is off. ``netkit.observe.Observability`` is the implementation netkit ships.

All calls are synchronous and must not raise: they run on the connection's own task,
between reads and writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._stream import HTTPStream


class ServerObserver(Protocol):
    """What ``serve`` and its connection drivers report (see the module docstring)."""

    def connection_opened(self, protocol: str) -> None:
        """A connection began speaking ``protocol`` (``"http/1.1"``, ``"h2"``, ``"websocket"``)."""

    def connection_closed(self, protocol: str) -> None:
        """A connection counted by ``connection_opened(protocol)`` ended."""

    def request_started(self, stream: HTTPStream) -> object:
        """A request head arrived; the returned token goes back to ``request_finished``.

        Called on the task that runs the handler, so a context variable set here is
        seen by the handler and by every task it starts.
        """

    def request_finished(self, stream: HTTPStream, token: object) -> None:
        """The handler is done and the exchange ended (answered, reset or abandoned)."""

    def reset(self, direction: str, code: int) -> None:
        """An HTTP/2 RST_STREAM was ``"sent"`` or ``"received"`` with error ``code``."""

    def goaway(self, direction: str, code: int) -> None:
        """An HTTP/2 GOAWAY was ``"sent"`` or ``"received"`` with error ``code``."""

    def limit_hit(self, kind: str) -> None:
        """A limit refused input: ``"413"``, ``"431"``, ``"REFUSED_STREAM"``,
        ``"ENHANCE_YOUR_CALM"``, ``"RESOURCE_EXHAUSTED"``, ``"ws_1009"``..."""
