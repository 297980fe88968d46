"""The v1 envelope codec (sans-I/O): round trips, total decoding, the contract file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.wire import ws_envelope as env

ROOT = Path(__file__).resolve().parents[2]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
ids = st.one_of(st.text(max_size=10), st.integers())
topic = st.lists(st.sampled_from(["a", "bb", "c-1"]), min_size=1, max_size=4).map(".".join)


@given(
    id_=ids,
    topic=topic,
    data=json_values,
    kind=st.sampled_from([env.Subscribe, env.Unsubscribe, env.Publish]),
)
def test_client_messages_round_trip(id_: str | int, topic: str, data: object, kind: type) -> None:
    message = kind(id_, topic, data) if kind is env.Publish else kind(id_, topic)
    assert env.decode_client(env.encode_client(message)) == message


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), json_values.map(json.dumps)))
def test_decoding_anything_raises_only_envelope_errors(raw: str | bytes) -> None:
    try:
        env.decode_client(raw)
    except env.EnvelopeError as exc:
        assert exc.code in {
            env.BAD_JSON,
            env.BAD_REQUEST,
            env.UNKNOWN_TYPE,
            env.UNSUPPORTED_VERSION,
            env.INVALID_TOPIC,
        }
    try:
        decoded = env.decode_server(raw)
    except env.EnvelopeError:
        return
    assert isinstance(decoded, env.Ack | env.Error | env.Message)


@given(topic=topic, data=json_values, id_=ids)
def test_server_messages_round_trip(topic: str, data: object, id_: str | int) -> None:
    assert env.decode_server(env.encode_message(topic, data)) == env.Message(topic, data)
    assert env.decode_server(env.encode_ack(id_)) == env.Ack(id_)
    assert env.decode_server(env.encode_error(id_, "x", "y")) == env.Error(id_, "x", "y")


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        ("a", "a.b", False),
    ],
)
def test_topic_matching(pattern: str, topic: str, matches: bool) -> None:
    assert env.topic_matches(pattern, topic) is matches


@pytest.mark.parametrize("bad", ["", "a..b", "a.b*", "a.>.b", "a b", "x" * 257])
def test_invalid_topics(bad: str) -> None:
    with pytest.raises(env.EnvelopeError):
        env.check_topic(bad, pattern=True)


def test_contract_schema_names_what_the_codec_speaks() -> None:
    schema = json.loads((ROOT / "protocols/ws/events.v1.schema.json").read_text())
    kinds = {
        d["properties"]["type"]["const"]
        for d in schema["$defs"].values()
        if "type" in d.get("properties", {})
    }
    assert kinds == {"subscribe", "unsubscribe", "publish", "ack", "error", "message"}
    codes = set(schema["$defs"]["error"]["properties"]["code"]["enum"])
    assert codes == {
        env.BAD_JSON,
        env.BAD_REQUEST,
        env.UNKNOWN_TYPE,
        env.UNSUPPORTED_VERSION,
        env.INVALID_TOPIC,
        env.FORBIDDEN,
    }
    assert schema["$defs"]["subscribe"]["properties"]["v"]["const"] == env.VERSION
