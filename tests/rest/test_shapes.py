"""Decoding JSON into attrs shapes: every problem found, each with its pointer."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any, Literal

import attrs
import pytest
from attrs import validators as v
from hypothesis import given
from hypothesis import strategies as st

from netkit.rest._shapes import INVALID, Shapes, jsonable, pointer_join


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Inner:
    n: int = attrs.field(validator=v.ge(0))


@attrs.frozen
class Outer:
    name: str
    ratio: float
    flag: bool
    tags: list[str]
    inner: Inner
    colour: Colour
    kind: Literal["a", "b"]
    ident: uuid.UUID
    when: datetime.datetime
    extra: dict[str, int] = attrs.field(factory=dict)
    maybe: Inner | None = None
    anything: Any = None


GOOD: dict[str, Any] = {
    "name": "x",
    "ratio": 1,
    "flag": True,
    "tags": ["a"],
    "inner": {"n": 1},
    "colour": "red",
    "kind": "a",
    "ident": "12345678-1234-5678-1234-567812345678",
    "when": "2026-11-30T12:00:00+00:00",
}


def decode(tp: Any, value: Any) -> tuple[Any, list[dict[str, str]]]:
    errors: list[dict[str, str]] = []
    return Shapes().decoder(tp)(value, "#", errors), errors


def test_a_good_value_decodes_and_encodes_back() -> None:
    value, errors = decode(Outer, GOOD)
    assert errors == []
    assert value.ratio == 1.0 and isinstance(value.ratio, float)
    assert value.colour is Colour.RED and value.ident == uuid.UUID(GOOD["ident"])
    encoded = jsonable(value)
    assert encoded["when"] == GOOD["when"] and encoded["colour"] == "red"
    again, errors = decode(Outer, encoded)
    assert errors == [] and again == value


@pytest.mark.parametrize(
    ("change", "pointer", "detail"),
    [
        ({"name": 1}, "#/name", "expected string, got integer"),
        ({"flag": 1}, "#/flag", "expected boolean, got integer"),
        ({"ratio": True}, "#/ratio", "expected number, got boolean"),
        ({"tags": ["a", 2]}, "#/tags/1", "expected string, got integer"),
        ({"inner": {"n": -1}}, "#/inner/n", "'n' must be >= 0: -1"),
        ({"inner": {}}, "#/inner/n", "required field is missing"),
        ({"colour": "green"}, "#/colour", "expected one of 'red', 'blue'"),
        ({"kind": "c"}, "#/kind", "expected one of 'a', 'b'"),
        ({"ident": "nope"}, "#/ident", "not a valid uuid: 'nope'"),
        ({"extra": {"a/b": "x"}}, "#/extra/a~1b", "expected integer, got string"),
        ({"maybe": 3}, "#/maybe", "expected Inner or null, got integer"),
        ({"maybe": {"n": "x"}}, "#/maybe/n", "expected integer, got string"),
        ({"surprise": 1}, "#/surprise", "unknown field"),
    ],
)
def test_each_problem_names_its_field(change: dict[str, Any], pointer: str, detail: str) -> None:
    value, errors = decode(Outer, {**GOOD, **change})
    assert value is INVALID
    assert errors == [{"pointer": pointer, "detail": detail}]


def test_all_problems_are_reported_at_once() -> None:
    _, errors = decode(Outer, {"name": 5, "bogus": 1})
    pointers = [e["pointer"] for e in errors]
    assert pointers[0] == "#/name" and "#/bogus" in pointers and "#/ratio" in pointers


def test_not_an_object() -> None:
    assert decode(Outer, [1])[1] == [{"pointer": "#", "detail": "expected object, got array"}]


def test_unsupported_annotations_fail_at_compile_time() -> None:
    with pytest.raises(TypeError):
        Shapes().decoder(set[int])


@attrs.frozen
class Tree:
    label: str
    children: list[Tree] = attrs.field(factory=list)


def test_recursive_shapes() -> None:
    _value, errors = decode(
        Tree, {"label": "a", "children": [{"label": "b", "children": [{"label": 1}]}]}
    )
    assert errors == [
        {"pointer": "#/children/0/children/0/label", "detail": "expected string, got integer"}
    ]
    assert Shapes().schema(Tree) == {"$ref": "#/components/schemas/Tree"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_any_json_value_either_decodes_or_names_a_field(value: Any) -> None:
    """No input crashes the decoder; a failure always comes with at least one pointer."""
    result, errors = decode(Outer, value)
    assert (result is INVALID) == bool(errors)
    assert all(e["pointer"].startswith("#") for e in errors)


@given(st.text())
def test_pointer_escaping_round_trips(key: str) -> None:
    token = pointer_join("#", key)[2:]
    assert token.replace("~1", "/").replace("~0", "~") == key
