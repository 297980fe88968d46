"""``protobuf_messages(cls)``: arbitrary instances of a protobuf message class.

The strategy walks the class's descriptor: every scalar type within its range (int32,
uint64, sint, fixed, float and double -- NaN included only when asked, since NaN != NaN
breaks round-trip checks --, bool, string, bytes), enums (the declared values), repeated
fields, maps, nested messages, and oneofs (at most one member set, as the wire allows).
Recursive messages are cut at ``max_depth``: below it a message field stays unset.
Proto3 ``optional`` fields are sometimes left unset, so presence is exercised too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

M = TypeVar("M", bound=Message)

_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}


def protobuf_messages(
    message_class: type[M],
    *,
    max_depth: int = 3,
    max_repeated: int = 4,
    allow_nan: bool = False,
) -> st.SearchStrategy[M]:
    """Instances of ``message_class`` with every field kind drawn (see the module)."""
    return _message(message_class.DESCRIPTOR, message_class, max_depth, max_repeated, allow_nan)


def _scalar(field: Any, allow_nan: bool) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(low, high)
    if kind == _F.TYPE_BOOL:
        return st.booleans()
    if kind == _F.TYPE_STRING:
        return st.text(max_size=32)
    if kind == _F.TYPE_BYTES:
        return st.binary(max_size=32)
    if kind == _F.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=allow_nan)
    if kind == _F.TYPE_DOUBLE:
        return st.floats(allow_nan=allow_nan)
    if kind == _F.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    raise TypeError(f"unsupported field type {kind} of {field.full_name}")


def _message(
    descriptor: Any, cls: type[Any] | None, depth: int, max_repeated: int, allow_nan: bool
) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> Any:
        from google.protobuf import message_factory

        message_cls = cls or message_factory.GetMessageClass(descriptor)
        message = message_cls()
        oneof_choice = {
            oneof.name: draw(st.none() | st.sampled_from([f.name for f in oneof.fields]))
            for oneof in descriptor.oneofs
            if not (len(oneof.fields) == 1 and oneof.fields[0].has_presence and _synthetic(oneof))
        }
        for field in descriptor.fields:
            oneof = field.containing_oneof
            if oneof is not None and oneof.name in oneof_choice:
                if oneof_choice[oneof.name] != field.name:
                    continue
            elif oneof is not None and not draw(st.booleans()):
                continue  # a proto3 optional field, left unset
            _set(draw, message, field, depth, max_repeated, allow_nan)
        return message

    return build()


def _synthetic(oneof: Any) -> bool:
    return bool(getattr(oneof, "is_synthetic", False)) or oneof.name.startswith("_")


def _set(
    draw: st.DrawFn,
    message: Any,
    field: Any,
    depth: int,
    max_repeated: int,
    allow_nan: bool,
) -> None:
    name = field.name
    is_message = field.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP)
    if is_message and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        keys = draw(st.lists(_scalar(key_field, False), max_size=max_repeated, unique=True))
        target = getattr(message, name)
        for key in keys:
            if value_field.type == _F.TYPE_MESSAGE:
                if depth <= 0:
                    continue
                target[key].CopyFrom(
                    draw(
                        _message(value_field.message_type, None, depth - 1, max_repeated, allow_nan)
                    )
                )
            else:
                target[key] = draw(_scalar(value_field, allow_nan))
        return
    repeated = field.is_repeated
    if is_message:
        if depth <= 0:
            return
        inner = _message(field.message_type, None, depth - 1, max_repeated, allow_nan)
        if repeated:
            getattr(message, name).extend(draw(st.lists(inner, max_size=max_repeated)))
        elif draw(st.booleans()) or field.containing_oneof is not None:
            getattr(message, name).CopyFrom(draw(inner))
        return
    values = _scalar(field, allow_nan)
    if repeated:
        getattr(message, name).extend(draw(st.lists(values, max_size=max_repeated)))
    else:
        setattr(message, name, draw(values))
