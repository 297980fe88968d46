"""The pub/sub envelope of netkit's WebSocket events protocol, version 1 (sans-I/O).

The contract is written down in ``protocols/ws/events.v1.md`` (with a JSON Schema beside
it); this module is its one implementation, used by the server hub and the client.
Every message is a JSON object with ``"v": 1`` and a ``"type"``:

client -> server
    ``subscribe``   ``{"v":1,"type":"subscribe","id":ID,"topic":PATTERN}``
    ``unsubscribe`` ``{"v":1,"type":"unsubscribe","id":ID,"topic":PATTERN}``
    ``publish``     ``{"v":1,"type":"publish","id":ID,"topic":TOPIC,"data":ANY}``
server -> client
    ``ack``         ``{"v":1,"type":"ack","id":ID}``
    ``error``       ``{"v":1,"type":"error","id":ID|null,"code":CODE,"detail":TEXT}``
    ``message``     ``{"v":1,"type":"message","topic":TOPIC,"data":ANY}``

``ID`` is a string or an integer chosen by the client and echoed back. Topics are
dot-separated segments (``orders.created``); a subscription pattern may use ``*`` for
exactly one segment and a final ``>`` for one or more trailing segments
(``orders.*``, ``orders.>``). Decoding never raises anything but :class:`EnvelopeError`,
which carries the request id when one could be read, so the server can answer with an
``error`` that the client can match to its request.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

VERSION = 1
MAX_TOPIC_LENGTH = 256

#: Error codes a server sends in ``error`` messages.
BAD_JSON = "bad_json"
BAD_REQUEST = "bad_request"
UNKNOWN_TYPE = "unknown_type"
UNSUPPORTED_VERSION = "unsupported_version"
INVALID_TOPIC = "invalid_topic"
FORBIDDEN = "forbidden"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class EnvelopeError(ValueError):
    """A client message that cannot be served; ``id`` is its request id when known."""

    def __init__(self, code: str, detail: str, id: str | int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.id = id


@attrs.frozen
class Subscribe:
    id: str | int
    topic: str


@attrs.frozen
class Unsubscribe:
    id: str | int
    topic: str


@attrs.frozen
class Publish:
    id: str | int
    topic: str
    data: Any = None


@attrs.frozen
class Ack:
    id: str | int


@attrs.frozen
class Error:
    id: str | int | None
    code: str
    detail: str


@attrs.frozen
class Message:
    topic: str
    data: Any = None


ClientMessage = Subscribe | Unsubscribe | Publish
ServerMessage = Ack | Error | Message


# -- topics ----------------------------------------------------------------------------
def check_topic(topic: object, *, pattern: bool) -> str:
    """``topic`` if it is a valid topic (or pattern); EnvelopeError(INVALID_TOPIC) if not."""
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LENGTH:
        raise EnvelopeError(INVALID_TOPIC, "a topic is a non-empty string of at most 256 chars")
    segments = topic.split(".")
    for n, segment in enumerate(segments):
        if not segment or any(c.isspace() for c in segment):
            raise EnvelopeError(INVALID_TOPIC, f"bad segment in topic {topic!r}")
        wildcard = segment in ("*", ">")
        if ("*" in segment or ">" in segment) and not wildcard:
            raise EnvelopeError(INVALID_TOPIC, f"wildcards must be whole segments: {topic!r}")
        if wildcard and not pattern:
            raise EnvelopeError(INVALID_TOPIC, f"cannot publish to a pattern: {topic!r}")
        if segment == ">" and n != len(segments) - 1:
            raise EnvelopeError(INVALID_TOPIC, f"'>' must be the last segment: {topic!r}")
    return topic


def topic_matches(pattern: str, topic: str) -> bool:
    """Does subscription ``pattern`` cover the concrete ``topic``? (the reference rule)"""
    want = pattern.split(".")
    have = topic.split(".")
    for n, segment in enumerate(want):
        if segment == ">":
            return len(have) > n
        if n >= len(have) or (segment != "*" and segment != have[n]):
            return False
    return len(want) == len(have)


# -- client -> server --------------------------------------------------------------------
def decode_client(text: str | bytes) -> ClientMessage:
    """Parse one client message; raise EnvelopeError (with the id when known) if bad."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EnvelopeError(BAD_REQUEST, "a message must be a JSON object")
    raw_id = obj.get("id")
    id_ = raw_id if _valid_id(raw_id) else None
    if obj.get("v") != VERSION:
        raise EnvelopeError(UNSUPPORTED_VERSION, f'expected "v": {VERSION}', id_)
    kind = obj.get("type")
    if kind not in ("subscribe", "unsubscribe", "publish"):
        raise EnvelopeError(UNKNOWN_TYPE, f"unknown message type {kind!r}", id_)
    if id_ is None:
        raise EnvelopeError(BAD_REQUEST, 'missing or invalid "id" (string or integer)')
    if "topic" not in obj:
        raise EnvelopeError(BAD_REQUEST, 'missing "topic"', id_)
    try:
        if kind == "publish":
            return Publish(id_, check_topic(obj["topic"], pattern=False), obj.get("data"))
        topic = check_topic(obj["topic"], pattern=True)
    except EnvelopeError as exc:
        exc.id = id_
        raise
    return Subscribe(id_, topic) if kind == "subscribe" else Unsubscribe(id_, topic)


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def encode_client(message: ClientMessage) -> str:
    obj: dict[str, Any] = {"v": VERSION, "type": _CLIENT_TYPES[type(message)], "id": message.id}
    obj["topic"] = message.topic
    if isinstance(message, Publish):
        obj["data"] = message.data
    return _dumps(obj)


_CLIENT_TYPES: dict[type, str] = {
    Subscribe: "subscribe",
    Unsubscribe: "unsubscribe",
    Publish: "publish",
}


# -- server -> client --------------------------------------------------------------------
def encode_ack(id: str | int) -> str:
    return _dumps({"v": VERSION, "type": "ack", "id": id})


def encode_error(id: str | int | None, code: str, detail: str) -> str:
    return _dumps({"v": VERSION, "type": "error", "id": id, "code": code, "detail": detail})


def encode_message(topic: str, data: Any) -> str:
    """A ``message``; raises TypeError/ValueError if ``data`` is not JSON-serialisable."""
    return _dumps({"v": VERSION, "type": "message", "topic": topic, "data": data})


def decode_server(text: str | bytes) -> ServerMessage:
    """Parse one server message (the client side); EnvelopeError if it is not one."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise EnvelopeError(BAD_REQUEST, "not a version 1 envelope")
    kind = obj.get("type")
    try:
        if kind == "message":
            return Message(check_topic(obj["topic"], pattern=False), obj.get("data"))
        if kind == "ack" and _valid_id(obj.get("id")):
            return Ack(obj["id"])
        if kind == "error":
            id_ = obj.get("id")
            return Error(id_ if _valid_id(id_) else None, str(obj["code"]), str(obj["detail"]))
    except KeyError as exc:
        raise EnvelopeError(BAD_REQUEST, f"missing {exc}") from None
    raise EnvelopeError(UNKNOWN_TYPE, f"unknown message type {kind!r}")
