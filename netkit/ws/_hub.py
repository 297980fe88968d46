"""The pub/sub hub: topics and patterns, fan-out into per-subscriber bounded queues.

``publish`` is a plain synchronous method: it finds the subscribers whose patterns cover
the topic (each connection once, however many of its patterns match), encodes the
``message`` envelope once, and appends it to each subscriber's outbox
(``WebSocket.send_nowait``). It never waits, so a publisher — a WebSocket client or any
server code (``app.ws.hub.publish``) — is never blocked by a slow reader, and messages
of one publisher reach every subscriber in publish order (one publish is appended
everywhere before the next starts). A full outbox applies the subscriber's policy:
drop the oldest message (counted in ``WebSocket.dropped``) or close with 1013.

Subscriptions live in a trie keyed by topic segment; ``*`` and ``>`` are children like
any other, so matching walks at most two branches per segment.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..wire import ws_envelope as env
from ._session import Overflow

log = logging.getLogger("netkit.ws")

Authorizer = Callable[[Any, str, str], Awaitable[bool] | bool]
"""``(principal, action, topic) -> allowed``; ``action`` is ``"subscribe"`` (``topic`` is
the pattern) or ``"publish"``. May be sync or async."""


class Sink(Protocol):
    """Where a subscriber's messages go (a WebSocket; a test double in tests)."""

    def send_nowait(self, message: str | bytes, overflow: Overflow = ...) -> bool: ...


class _Node:
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        #: Subscribers whose pattern ends at this node.
        self.subscribers: dict[Subscriber, None] = {}


class Subscriber:
    """One connection's membership in the hub."""

    __slots__ = ("overflow", "patterns", "principal", "sink")

    def __init__(
        self, sink: Sink, principal: Any = None, overflow: Overflow = Overflow.DROP_OLDEST
    ):
        self.sink = sink
        self.principal = principal
        self.overflow = overflow
        self.patterns: set[str] = set()


class Hub:
    """Topics and subscribers of one App (``app.ws.hub``)."""

    def __init__(self) -> None:
        self._root = _Node()
        self._subscribers: set[Subscriber] = set()
        #: Messages published since the hub was made (for tests and metrics).
        self.published = 0

    # -- membership ------------------------------------------------------------------
    def add(
        self, sink: Sink, principal: Any = None, overflow: Overflow = Overflow.DROP_OLDEST
    ) -> Subscriber:
        subscriber = Subscriber(sink, principal, overflow)
        self._subscribers.add(subscriber)
        return subscriber

    def subscribe(self, subscriber: Subscriber, pattern: str) -> None:
        env.check_topic(pattern, pattern=True)
        if pattern in subscriber.patterns:
            return
        node = self._root
        for segment in pattern.split("."):
            node = node.children.setdefault(segment, _Node())
        node.subscribers[subscriber] = None
        subscriber.patterns.add(pattern)

    def unsubscribe(self, subscriber: Subscriber, pattern: str) -> None:
        if pattern not in subscriber.patterns:
            return
        subscriber.patterns.discard(pattern)
        path = [self._root]
        for segment in pattern.split("."):
            path.append(path[-1].children[segment])
        path[-1].subscribers.pop(subscriber, None)
        # Prune branches nobody uses any more, so topics that come and go leave no trace.
        segments = pattern.split(".")
        for depth in range(len(segments), 0, -1):
            node = path[depth]
            if node.subscribers or node.children:
                break
            del path[depth - 1].children[segments[depth - 1]]

    def remove(self, subscriber: Subscriber) -> None:
        """Forget a subscriber and all its subscriptions (on disconnect)."""
        for pattern in list(subscriber.patterns):
            self.unsubscribe(subscriber, pattern)
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- fan-out -----------------------------------------------------------------------
    def matching(self, topic: str) -> dict[Subscriber, None]:
        """Every subscriber with a pattern covering ``topic``, each once."""
        found: dict[Subscriber, None] = {}
        segments = topic.split(".")
        last = len(segments) - 1
        nodes = [self._root]
        for n, segment in enumerate(segments):
            following = []
            for node in nodes:
                children = node.children
                if (tail := children.get(">")) is not None:
                    found.update(tail.subscribers)
                if (exact := children.get(segment)) is not None:
                    following.append(exact)
                if (star := children.get("*")) is not None:
                    following.append(star)
            if not following:
                return found
            nodes = following
            if n == last:
                for node in nodes:
                    found.update(node.subscribers)
        return found

    def publish(self, topic: str, data: Any = None) -> int:
        """Send ``data`` to every subscriber of ``topic`` now; returns how many got it queued.

        Raises ValueError for an invalid topic (or a pattern) and TypeError for data JSON
        cannot encode. Never blocks.
        """
        env.check_topic(topic, pattern=False)
        text = env.encode_message(topic, data)
        self.published += 1
        delivered = 0
        for subscriber in self.matching(topic):
            if subscriber.sink.send_nowait(text, subscriber.overflow):
                delivered += 1
        return delivered

    # -- the envelope protocol on one connection -----------------------------------------
    async def serve(
        self,
        ws: Any,
        *,
        authorize: Authorizer | None = None,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> None:
        """Run the events protocol for one WebSocket until it closes.

        Replies (``ack``/``error``) go through the same outbox as delivered messages, so
        a client sees them in order: after a ``subscribe``'s ack, every later publish.
        """
        subscriber = self.add(ws, ws.principal, overflow)
        reply = ws.send_nowait
        try:
            async for raw in ws:
                try:
                    request = env.decode_client(raw)
                    if authorize is not None and not isinstance(request, env.Unsubscribe):
                        allowed = authorize(ws.principal, _action(request), request.topic)
                        if inspect.isawaitable(allowed):
                            allowed = await allowed
                        _check(bool(allowed), request)
                    answer = self._apply(subscriber, request)
                except env.EnvelopeError as exc:
                    answer = env.encode_error(exc.id, exc.code, exc.detail)
                reply(answer, overflow)
        finally:
            self.remove(subscriber)

    def handle(
        self, subscriber: Subscriber, raw: str | bytes, authorize: Authorizer | None = None
    ) -> str:
        """One client message, synchronously (sync authorizers only): the reply to send."""
        try:
            request = env.decode_client(raw)
            if authorize is not None and not isinstance(request, env.Unsubscribe):
                allowed = authorize(subscriber.principal, _action(request), request.topic)
                if inspect.isawaitable(allowed):
                    raise TypeError("Hub.handle needs a synchronous authorizer")
                _check(bool(allowed), request)
            return self._apply(subscriber, request)
        except env.EnvelopeError as exc:
            return env.encode_error(exc.id, exc.code, exc.detail)

    def _apply(self, subscriber: Subscriber, request: env.ClientMessage) -> str:
        if isinstance(request, env.Subscribe):
            self.subscribe(subscriber, request.topic)
        elif isinstance(request, env.Unsubscribe):
            self.unsubscribe(subscriber, request.topic)
        else:
            self.publish(request.topic, request.data)
        return env.encode_ack(request.id)


def _action(request: env.ClientMessage) -> str:
    return "publish" if isinstance(request, env.Publish) else "subscribe"


def _check(allowed: bool, request: env.Subscribe | env.Publish) -> None:
    if not allowed:
        action = _action(request)
        raise env.EnvelopeError(
            env.FORBIDDEN, f"not allowed to {action} {request.topic!r}", request.id
        )
