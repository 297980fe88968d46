"""Typed query parameters: a route's ``query=`` attrs class, decoded from the query string.

A query string carries text only, and a name may repeat, so the field types are fewer
than a body's: ``str``, ``int``, ``float``, ``bool``, an :class:`enum.Enum` (by value),
``Literal[...]``, :class:`uuid.UUID`, :class:`datetime.date` / :class:`datetime.datetime`
(ISO 8601), each optionally ``| None``, and ``list[X]`` / ``tuple[X, ...]`` of those
(the parameter repeated: ``?status=a&status=b``, OpenAPI's default ``form``/``explode``).
A field with a default may be left out; every other one is required.

The text rules are strict, so one value means one thing: integers are ASCII digits with
an optional ``-``; floats are JSON number syntax (no ``nan``, ``inf``, ``_``, spaces);
booleans are ``true``/``false`` (any case) or ``1``/``0``; a scalar given twice is an
error. Parameters the class does not declare are ignored (cache busters, tracking
parameters), unlike unknown body fields.

The class is compiled once at registration; decoding collects *every* problem, each at
``/query/<name>`` (``/query/<name>/<i>`` for the i-th value of a list), and then builds
the class, so its attrs validators run too. Sans-I/O: a mapping in, a value or
:class:`~._shapes.ValidationFailed` out.
"""

from __future__ import annotations

import datetime
import enum
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from ._shapes import Decoder, Errors, Shapes, ValidationFailed, _locate_validator_errors, jsonable

POINTER = "/query"

_INT = re.compile(r"-?[0-9]{1,40}")
_FLOAT = re.compile(r"-?[0-9]{1,40}(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}

Convert = Callable[[str], Any]
"""Text to value; raises ``ValueError(detail)`` when the text does not fit."""


def _shown(text: str) -> str:
    return repr(text[:64])


def _to_str(text: str) -> str:
    return text


def _to_int(text: str) -> int:
    if _INT.fullmatch(text) is None:
        raise ValueError(f"expected integer, got {_shown(text)}")
    return int(text)


def _to_float(text: str) -> float:
    if _FLOAT.fullmatch(text) is None:
        raise ValueError(f"expected number, got {_shown(text)}")
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {_shown(text)}")
    return value


def _to_bool(text: str) -> bool:
    value = _BOOLS.get(text.lower())
    if value is None:
        raise ValueError(f"expected true or false, got {_shown(text)}")
    return value


def text_of(value: Any) -> str:
    """The query-string text of a value (how a client should send it)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _choices(values: Mapping[str, Any]) -> Convert:
    allowed = ", ".join(values)

    def convert(text: str) -> Any:
        try:
            return values[text]
        except KeyError:
            raise ValueError(f"expected one of {allowed}, got {_shown(text)}") from None

    return convert


def _parsed(name: str, parse: Callable[[str], Any]) -> Convert:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise ValueError(f"not a valid {name}: {_shown(text)}") from None

    return convert


_SCALARS: dict[object, Convert] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _parsed("uuid", uuid.UUID),
    datetime.datetime: _parsed("date-time", datetime.datetime.fromisoformat),
    datetime.date: _parsed("date", datetime.date.fromisoformat),
}


def _scalar(tp: Any, cls: type, name: str) -> Convert:
    found = _SCALARS.get(tp)
    if found is not None:
        return found
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _choices({text_of(m): m for m in tp})
    if typing.get_origin(tp) is Literal:
        return _choices({text_of(v): v for v in typing.get_args(tp)})
    raise TypeError(
        f"query parameter {name!r} of {cls.__name__} has type {tp!r}; a query parameter "
        "is str, int, float, bool, an enum, a Literal, UUID, date, datetime, or a list of those"
    )


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X`` (the query cannot say null: absent is the only None)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


@attrs.frozen
class QueryParam:
    """One compiled field: how to read it and how the OpenAPI document describes it."""

    name: str
    convert: Convert
    many: type[list[Any]] | type[tuple[Any, ...]] | None
    required: bool
    attribute: attrs.Attribute[Any]
    pointer: str
    schema: dict[str, Any]
    description: str | None


class QueryDecoder:
    """Decodes one ``query=`` class from parsed query values (``parse_qs`` output)."""

    def __init__(self, cls: type, shapes: Shapes) -> None:
        if not (isinstance(cls, type) and attrs.has(cls)):
            raise TypeError(f"query= takes an attrs class, not {cls!r}")
        self.cls = cls
        attrs.resolve_types(cls)
        params: list[QueryParam] = []
        for field in attrs.fields(cls):
            if not field.init:
                continue
            name = field.alias or field.name
            tp = _without_none(field.type)
            origin = typing.get_origin(tp)
            args = typing.get_args(tp)
            many: type[list[Any]] | type[tuple[Any, ...]] | None = None
            if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
                many = list if origin is list else tuple
                tp = _without_none(args[0])
            convert = _scalar(tp, cls, name)
            item_schema = shapes.schema(tp)
            schema = {"type": "array", "items": item_schema} if many else item_schema
            required = field.default is attrs.NOTHING
            if not required:
                default = _default_of(field)
                if default is not None:
                    schema["default"] = jsonable(default)
            description = field.metadata.get("description")
            params.append(
                QueryParam(
                    name,
                    convert,
                    many,
                    required,
                    field,
                    f"{POINTER}/{name.replace('~', '~0').replace('/', '~1')}",
                    schema,
                    description if isinstance(description, str) else None,
                )
            )
        self.params = tuple(params)

    def __call__(self, values: Mapping[str, list[str]]) -> Any:
        """The class built from ``values``; :class:`ValidationFailed` names every misfit."""
        errors: Errors = []
        kwargs: dict[str, Any] = {}
        for param in self.params:
            texts = values.get(param.name)
            if not texts:
                if param.required:
                    errors.append(
                        {"pointer": param.pointer, "detail": "required query parameter is missing"}
                    )
                continue
            if param.many is None:
                if len(texts) > 1:
                    errors.append(
                        {
                            "pointer": param.pointer,
                            "detail": f"given {len(texts)} times; expected one value",
                        }
                    )
                    continue
                try:
                    kwargs[param.name] = param.convert(texts[0])
                except ValueError as exc:
                    errors.append({"pointer": param.pointer, "detail": str(exc)})
                continue
            items: list[Any] = []
            for i, text in enumerate(texts):
                try:
                    items.append(param.convert(text))
                except ValueError as exc:
                    errors.append({"pointer": f"{param.pointer}/{i}", "detail": str(exc)})
            kwargs[param.name] = param.many(items)
        if errors:
            raise ValidationFailed(errors)
        try:
            return self.cls(**kwargs)
        except (ValueError, TypeError) as exc:
            fields: list[tuple[str, str, Decoder, bool, attrs.Attribute[Any], str]] = [
                (p.name, p.name, _unused, p.required, p.attribute, "") for p in self.params
            ]
            _locate_validator_errors(fields, kwargs, POINTER, errors, exc)
            raise ValidationFailed(errors) from None

    def openapi_parameters(self) -> list[dict[str, Any]]:
        """The ``in: query`` parameter objects of the OpenAPI operation."""
        out: list[dict[str, Any]] = []
        for param in self.params:
            item: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required}
            if param.description:
                item["description"] = param.description
            item["schema"] = dict(param.schema)
            out.append(item)
        return out


def _unused(value: object, pointer: str, errors: Errors) -> Any:
    return value


def _default_of(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return None
        return default.factory()
    return default
