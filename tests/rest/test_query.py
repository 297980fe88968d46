"""The ``query=`` decoder without a network: types, errors, registration, OpenAPI."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Literal

import attrs
import pytest
from attrs import validators as v
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

from netkit.rest import RestAPI, RestRequest
from netkit.rest._query import QueryDecoder, text_of
from netkit.rest._shapes import Shapes, ValidationFailed


@attrs.frozen
class Window:
    start: datetime.date
    order: Literal["asc", "desc"] = "asc"
    ids: tuple[uuid.UUID, ...] = ()
    at: datetime.datetime | None = None
    size: int = attrs.field(default=10, validator=v.in_(range(1, 101)))
    cursor_: str | None = attrs.field(default=None, alias="cursor")


def decode(cls: type, values: dict[str, list[str]]) -> Any:
    return QueryDecoder(cls, Shapes())(values)


def errors(cls: type, values: dict[str, list[str]]) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        decode(cls, values)
    return info.value.errors


@given(
    start=st.dates(),
    order=st.sampled_from(["asc", "desc"]),
    ids=st.lists(st.uuids(), max_size=3),
    at=st.none() | st.datetimes(),
    size=st.integers(1, 100),
)
def test_values_round_trip_through_their_text(
    start: datetime.date,
    order: str,
    ids: list[uuid.UUID],
    at: datetime.datetime | None,
    size: int,
) -> None:
    values = {
        "start": [text_of(start)],
        "order": [order],
        "ids": [text_of(i) for i in ids],
        "size": [text_of(size)],
    }
    if at is not None:
        values["at"] = [text_of(at)]
    assert decode(Window, values) == Window(start, order, tuple(ids), at, size)  # type: ignore[arg-type]


def test_validators_aliases_and_nested_pointers() -> None:
    assert errors(Window, {"start": ["2026-01-01"], "size": ["0"]}) == [
        {"pointer": "/query/size", "detail": "'size' must be in range(1, 101) (got 0)"}
    ]
    assert decode(Window, {"start": ["2026-01-01"], "cursor": ["x"]}).cursor_ == "x"
    assert errors(Window, {"start": ["someday"], "ids": ["x"], "order": ["up"]}) == [
        {"pointer": "/query/start", "detail": "not a valid date: 'someday'"},
        {"pointer": "/query/order", "detail": "expected one of asc, desc, got 'up'"},
        {"pointer": "/query/ids/0", "detail": "not a valid uuid: 'x'"},
    ]


@attrs.frozen
class Nested:
    window: Window


@attrs.frozen
class Mapping_:
    extra: dict[str, str]


@pytest.mark.parametrize("shape", [Nested, Mapping_, dict[str, int]])
def test_shapes_a_query_cannot_carry_fail_at_registration(shape: Any) -> None:
    api = RestAPI()

    async def handler(request: RestRequest[None]) -> None:
        return None

    with pytest.raises(TypeError):
        api.route("GET", "/v1/x", handler, query=shape)


def test_document_has_query_parameters_and_stays_valid() -> None:
    api = RestAPI()

    @api.get("/v1/window/{name}", query=Window)
    async def window(request: RestRequest[None]) -> None:
        return None

    document = api.openapi()
    validate(document)
    parameters = document["paths"]["/v1/window/{name}"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [
        ("name", "path", True),
        ("start", "query", True),
        ("order", "query", False),
        ("ids", "query", False),
        ("at", "query", False),
        ("size", "query", False),
        ("cursor", "query", False),
    ]
    assert parameters[1]["schema"] == {"type": "string", "format": "date"}
    assert parameters[3]["schema"] == {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "default": [],
    }
