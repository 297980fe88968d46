"""``PubSubMachine``: WebSocket sessions speaking the pub/sub envelope, against a model.

Several clients connect to an App's pub/sub endpoint over in-memory WebSocket
connections (trio-websocket, HTTP/1.1 Upgrade) and stay connected across rules. Rules:
``connect``, ``disconnect`` (a clean close), ``subscribe`` / ``unsubscribe`` (a pattern
with ``*`` and ``>``; each followed by a *probe*: server code publishes to a topic the
pattern covers, so a wrong subscription table shows at once), ``publish`` from a client
(through the envelope) or from server code (``app.ws.hub.publish``), and ``advance``
(mock time passes: heartbeats and idle timers run). Every rule settles, so the server
has answered before the next one.

Invariants, checked after every rule:

1. **Every request is answered once, in order**: a client's replies are acks for its
   requests, with their ids, in the order sent (an error only where the model's
   authorization says so).
2. **Exactly the subscribers get a message, exactly once**: each client's delivered
   messages equal the model's -- every publish whose topic one of its patterns matched
   when it was published (once however many match), in publish order; nothing for a
   pattern it unsubscribed, nothing after it disconnected.
3. **Nothing is left behind**: the hub's subscriber count is the number of connected
   clients.

Run it against your own App by overriding :meth:`PubSubMachine.make_app` (and ``PATH``);
the default App serves ``app.ws.pubsub(PATH)`` with no authorization.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, rule

from ..app import App
from ..wire import ws_envelope as env
from ._machine import Held, TrioStateMachine
from ._memory import MemoryServer, open_websocket
from ._strategies import pubsub_patterns, pubsub_topics


def _covered(pattern: str) -> str:
    """A topic ``pattern`` covers: its wildcards made concrete."""
    return ".".join("x" if segment in ("*", ">") else segment for segment in pattern.split("."))


class _Client:
    """One connected client: what it sent and what came back."""

    def __init__(self, name: str, held: Held[Any]) -> None:
        self.name = name
        self.held = held
        self.sent_ids: list[int] = []
        self.replies: list[env.ServerMessage] = []
        self.messages: list[tuple[str, Any]] = []
        self.reader_done = trio.Event()


class PubSubMachine(TrioStateMachine):
    """See the module docstring."""

    PATH: ClassVar[str] = "/events"
    CLIENTS: ClassVar[tuple[str, ...]] = ("c0", "c1")
    ADVANCES: ClassVar[tuple[float, ...]] = (0.5, 5.0, 30.0)
    TOPICS = pubsub_topics(("a", "b"), max_depth=2)
    PATTERNS = pubsub_patterns(("a", "b"), max_depth=2)
    subscriptions = Bundle("subscriptions")

    def make_app(self) -> App:
        app = App()
        app.ws.pubsub(self.PATH)
        return app

    @initialize()
    async def start_server(self) -> None:
        self.app = self.make_app()
        self.server: MemoryServer = await self.start(MemoryServer(self.app).run)
        self.clients: dict[str, _Client] = {}
        self.patterns: dict[str, set[str]] = {}
        self.expected: dict[str, list[tuple[str, Any]]] = {}
        self.ids = itertools.count()
        self.serial = itertools.count()
        for name in self.CLIENTS:  # everyone starts connected
            await self._connect(name)

    # -- helpers ----------------------------------------------------------------------------
    async def _request(self, client: _Client, message: env.ClientMessage) -> None:
        client.sent_ids.append(int(message.id))
        await client.held.value.send_message(env.encode_client(message))

    async def _read(self, client: _Client) -> None:
        ws = client.held.value
        try:
            while True:
                raw = await ws.get_message()
                decoded = env.decode_server(raw)
                if isinstance(decoded, env.Message):
                    client.messages.append((decoded.topic, decoded.data))
                else:
                    client.replies.append(decoded)
        except Exception:  # the connection closed: the reader's job is over
            pass
        finally:
            client.reader_done.set()

    # -- rules ----------------------------------------------------------------------------
    @rule(name=st.sampled_from(CLIENTS))
    async def connect(self, name: str) -> None:
        await self._connect(name)

    async def _connect(self, name: str) -> None:
        if name in self.clients:
            return
        held = await self.hold(open_websocket(self.server, self.PATH))
        client = self.clients[name] = _Client(name, held)
        self.patterns[name] = set()
        self.expected[name] = []
        self.nursery.start_soon(self._read, client)

    @rule(name=st.sampled_from(CLIENTS))
    async def disconnect(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is None:
            return
        await client.held.close()
        self.patterns[name] = set()
        self._check_client(client)  # its last deliveries, before forgetting it

    @rule(target=subscriptions, name=st.sampled_from(CLIENTS), pattern=PATTERNS)
    async def subscribe(self, name: str, pattern: str) -> tuple[str, str]:
        if name in self.clients:
            await self._request(self.clients[name], env.Subscribe(next(self.ids), pattern))
            self.patterns[name].add(pattern)
            await self._probe(pattern)
        return name, pattern

    @rule(subscription=subscriptions)
    async def unsubscribe(self, subscription: tuple[str, str]) -> None:
        name, pattern = subscription
        if name in self.clients:
            await self._request(self.clients[name], env.Unsubscribe(next(self.ids), pattern))
            self.patterns[name].discard(pattern)
            await self._probe(pattern)

    @rule(publisher=st.sampled_from((*CLIENTS, None)), subscription=subscriptions)
    async def publish_to_a_subscription(
        self, publisher: str | None, subscription: tuple[str, str]
    ) -> None:
        """Publish to a topic the pattern covers (``*`` and ``>`` become a segment)."""
        await self._publish(publisher, _covered(subscription[1]))

    async def _probe(self, pattern: str) -> None:
        """A change of subscriptions is checked at once: server code publishes to a topic
        the pattern covers (after the change's ack, so the hub has applied it)."""
        await trio.testing.wait_all_tasks_blocked()
        await self._publish(None, _covered(pattern))

    @rule(publisher=st.sampled_from((*CLIENTS, None)), topic=TOPICS)
    async def publish(self, publisher: str | None, topic: str) -> None:
        await self._publish(publisher, topic)

    async def _publish(self, publisher: str | None, topic: str) -> None:
        data = next(self.serial)
        if publisher is None:
            self.app.ws.hub.publish(topic, data)
        elif publisher in self.clients:
            await self._request(self.clients[publisher], env.Publish(next(self.ids), topic, data))
        else:
            return
        for name, patterns in self.patterns.items():
            if name in self.clients and any(env.topic_matches(p, topic) for p in patterns):
                self.expected[name].append((topic, data))

    @rule(seconds=st.sampled_from(ADVANCES))
    async def advance(self, seconds: float) -> None:
        await trio.sleep(seconds)

    # -- invariants -------------------------------------------------------------------------
    def _check_client(self, client: _Client) -> None:
        acked = [r.id for r in client.replies if isinstance(r, env.Ack)]
        errors = [r for r in client.replies if isinstance(r, env.Error)]
        assert not errors, f"{client.name}: error replies {errors}"
        assert acked == client.sent_ids, (
            f"{client.name}: acks {acked} for requests {client.sent_ids}"
        )
        expected = self.expected[client.name]
        assert client.messages == expected, (
            f"{client.name} received {client.messages}, expected {expected} "
            f"(patterns {sorted(self.patterns.get(client.name, ()))})"
        )

    @invariant()
    def deliveries_match_the_model(self) -> None:
        for client in self.clients.values():
            assert not client.reader_done.is_set(), f"{client.name}: the server closed it"
            self._check_client(client)

    @invariant()
    def no_subscriber_left_behind(self) -> None:
        hub = self.app.ws.hub
        assert hub.subscriber_count == len(self.clients), (
            f"hub has {hub.subscriber_count} subscribers, {len(self.clients)} connected"
        )

    async def cleanup(self) -> None:
        for client in list(self.clients.values()):
            await client.held.close()
