"""The hub against a model: a RuleBasedStateMachine over subscribe / unsubscribe /
publish / disconnect with several clients (through the envelope, authorization included),
and the trie's matching against the reference rule."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from netkit.wire import ws_envelope as env
from netkit.ws import Hub, Overflow

SEGMENTS = ["a", "b", "c"]
topics = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(".".join)
patterns = st.lists(st.sampled_from([*SEGMENTS, "*"]), min_size=1, max_size=3).flatmap(
    lambda segs: st.sampled_from([".".join(segs), ".".join([*segs, ">"])])
)


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []

    def send_nowait(self, message: str | bytes, overflow: Overflow = Overflow.CLOSE) -> bool:
        obj = json.loads(message)
        if obj["type"] == "message":
            self.received.append((obj["topic"], obj["data"]))
        return True


def authorize(principal: Any, action: str, topic: str) -> bool:
    # "guest" may not subscribe to anything under "c" nor publish at all.
    if principal == "guest":
        return action == "subscribe" and not topic.startswith("c")
    return True


CLIENTS = ["c0", "c1", "c2", "guest"]


class HubMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.hub = Hub()
        self.subscribers: dict[str, Any] = {}
        self.sinks: dict[str, Sink] = {}
        self.model_patterns: dict[str, set[str]] = {}
        self.expected: dict[str, list[tuple[str, Any]]] = {}
        self.count = 0
        for name in CLIENTS:
            self.connect(name)

    def connect(self, name: str) -> None:
        sink = Sink()
        self.sinks[name] = sink
        self.subscribers[name] = self.hub.add(sink, principal=name)
        self.model_patterns[name] = set()
        self.expected[name] = []

    def send(self, name: str, **fields: Any) -> dict[str, Any]:
        raw = json.dumps({"v": 1, "id": self.count, **fields})
        self.count += 1
        reply: dict[str, Any] = json.loads(self.hub.handle(self.subscribers[name], raw, authorize))
        return reply

    @rule(name=st.sampled_from(CLIENTS), pattern=patterns)
    def subscribe(self, name: str, pattern: str) -> None:
        if name not in self.subscribers:
            return
        reply = self.send(name, type="subscribe", topic=pattern)
        if authorize(name, "subscribe", pattern):
            assert reply["type"] == "ack"
            self.model_patterns[name].add(pattern)
        else:
            assert (reply["type"], reply["code"]) == ("error", "forbidden")

    @rule(name=st.sampled_from(CLIENTS), pattern=patterns)
    def unsubscribe(self, name: str, pattern: str) -> None:
        if name not in self.subscribers:
            return
        assert self.send(name, type="unsubscribe", topic=pattern)["type"] == "ack"
        self.model_patterns[name].discard(pattern)

    @rule(publisher=st.sampled_from([*CLIENTS, None]), topic=topics)
    def publish(self, publisher: str | None, topic: str) -> None:
        data = self.count
        if publisher is None:  # server code publishing
            self.hub.publish(topic, data)
            self.count += 1
        else:
            if publisher not in self.subscribers:
                return
            reply = self.send(publisher, type="publish", topic=topic, data=data)
            if not authorize(publisher, "publish", topic):
                assert reply["code"] == "forbidden"
                return
            assert reply["type"] == "ack"
        for name, pats in self.model_patterns.items():
            if name in self.subscribers and any(env.topic_matches(p, topic) for p in pats):
                self.expected[name].append((topic, data))  # exactly once, however many match

    @rule(name=st.sampled_from(CLIENTS))
    def disconnect(self, name: str) -> None:
        if name in self.subscribers:
            self.hub.remove(self.subscribers.pop(name))
            self.model_patterns[name] = set()

    @rule(name=st.sampled_from(CLIENTS))
    def reconnect(self, name: str) -> None:
        if name not in self.subscribers:
            self.connect(name)

    @invariant()
    def deliveries_match_the_model(self) -> None:
        for name, sink in self.sinks.items():
            assert sink.received == self.expected[name], name

    @invariant()
    def no_subscriptions_left_by_the_gone(self) -> None:
        assert self.hub.subscriber_count == len(self.subscribers)


TestHubMachine = HubMachine.TestCase


@given(pattern_list=st.lists(patterns, max_size=8), topic=topics)
def test_trie_matching_is_the_reference_rule(pattern_list: list[str], topic: str) -> None:
    hub = Hub()
    subs = []
    for pattern in pattern_list:
        sub = hub.add(Sink())
        hub.subscribe(sub, pattern)
        subs.append((sub, pattern))
    found = hub.matching(topic)
    assert set(found) == {sub for sub, p in subs if env.topic_matches(p, topic)}


def test_unsubscribe_prunes_the_trie() -> None:
    hub = Hub()
    sub = hub.add(Sink())
    hub.subscribe(sub, "a.*.c")
    hub.subscribe(sub, "a.>")
    hub.remove(sub)
    assert hub._root.children == {}
