"""JSON shapes declared with attrs classes: decoding with validation, encoding, JSON Schema.

A request shape is an attrs class whose field annotations use: ``str``, ``int``,
``float``, ``bool``, ``None``, ``X | Y`` (``X | None``), ``list[X]``, ``tuple[X, ...]``,
``dict[str, X]``, ``Literal[...]``, an :class:`enum.Enum`, :class:`uuid.UUID`,
:class:`datetime.datetime` / :class:`datetime.date` (ISO 8601 strings), ``Any`` and
other attrs classes. A field with a default may be left out; every other field is
required; fields the class does not declare are errors. After the types check out, the
class is built, so its own attrs validators run too.

Each class is compiled once into a decoder (no introspection per request). Decoding
collects *every* problem rather than stopping at the first, each with an RFC 6901 JSON
pointer in the URI-fragment form RFC 9457's example uses (``#/items/0/quantity``).
"""

from __future__ import annotations

import datetime
import enum
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Literal

import attrs

Errors = list[dict[str, str]]
Decoder = Callable[[object, str, Errors], Any]


class _Invalid:
    """Marks a value that failed to decode (the error is already in the list)."""


INVALID: Any = _Invalid()


class ValidationFailed(Exception):
    """The JSON value does not fit the declared shape; ``errors`` names every field."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


def pointer_join(pointer: str, key: str | int) -> str:
    """RFC 6901: ``~`` and ``/`` in a key are escaped."""
    text = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{text}"


def _fail(errors: Errors, pointer: str, detail: str) -> Any:
    errors.append({"pointer": pointer or "#", "detail": detail})
    return INVALID


_JSON_TYPE = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}


def _json_type_name(value: object) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _simple(expected: type, name: str) -> Decoder:
    def decode(value: object, pointer: str, errors: Errors) -> Any:
        if type(value) is expected:
            return value
        return _fail(errors, pointer, f"expected {name}, got {_json_type_name(value)}")

    return decode


def _decode_float(value: object, pointer: str, errors: Errors) -> Any:
    if type(value) is float or type(value) is int:
        return float(value)
    return _fail(errors, pointer, f"expected number, got {_json_type_name(value)}")


def _decode_any(value: object, pointer: str, errors: Errors) -> Any:
    return value


def _parsed(name: str, parse: Callable[[str], Any]) -> Decoder:
    def decode(value: object, pointer: str, errors: Errors) -> Any:
        if type(value) is not str:
            return _fail(errors, pointer, f"expected {name} string, got {_json_type_name(value)}")
        try:
            return parse(value)
        except ValueError:
            return _fail(errors, pointer, f"not a valid {name}: {value[:64]!r}")

    return decode


_SCALARS: dict[object, tuple[Decoder, dict[str, Any]]] = {
    str: (_simple(str, "string"), {"type": "string"}),
    int: (_simple(int, "integer"), {"type": "integer"}),
    bool: (_simple(bool, "boolean"), {"type": "boolean"}),
    float: (_decode_float, {"type": "number"}),
    type(None): (_simple(type(None), "null"), {"type": "null"}),
    None: (_simple(type(None), "null"), {"type": "null"}),
    Any: (_decode_any, {}),
    object: (_decode_any, {}),
    uuid.UUID: (_parsed("uuid", uuid.UUID), {"type": "string", "format": "uuid"}),
    datetime.datetime: (
        _parsed("date-time", datetime.datetime.fromisoformat),
        {"type": "string", "format": "date-time"},
    ),
    datetime.date: (
        _parsed("date", datetime.date.fromisoformat),
        {"type": "string", "format": "date"},
    ),
}


class Shapes:
    """Compiles annotations into decoders and JSON Schemas, caching per class.

    ``components`` collects the schemas of attrs classes by class name, for the
    OpenAPI document's ``components/schemas``; references point there.
    """

    def __init__(self) -> None:
        self._decoders: dict[type, Decoder] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self._component_owner: dict[str, type] = {}

    # -- decoding -------------------------------------------------------------------
    def decoder(self, tp: Any) -> Decoder:
        scalar = _SCALARS.get(tp)
        if scalar is not None:
            return scalar[0]
        if isinstance(tp, type) and attrs.has(tp):
            return self._class_decoder(tp)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_decoder(tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            return _literal_decoder(args)
        if origin in (typing.Union, types.UnionType):
            return self._union_decoder(args)
        if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            return self._list_decoder(args[0], tuple if origin is tuple else list)
        if origin is dict and args and args[0] is str:
            return self._dict_decoder(args[1])
        raise TypeError(f"netkit.rest cannot decode JSON into {tp!r}")

    def _class_decoder(self, cls: type) -> Decoder:
        found = self._decoders.get(cls)
        if found is not None:
            return found
        # Placeholder first, so a class that refers to itself compiles.
        # (JSON name, init name, decoder, required, attribute, "/escaped-name")
        fields_ref: list[tuple[str, str, Decoder, bool, attrs.Attribute[Any], str]] = []

        def decode(value: object, pointer: str, errors: Errors) -> Any:
            if type(value) is not dict:
                return _fail(errors, pointer, f"expected object, got {_json_type_name(value)}")
            before = len(errors)
            kwargs: dict[str, Any] = {}
            for name, init_name, field_decoder, required, _, suffix in fields_ref:
                if name in value:
                    kwargs[init_name] = field_decoder(value[name], pointer + suffix, errors)
                elif required:
                    _fail(errors, pointer + suffix, "required field is missing")
            if len(value) > len(kwargs):
                known = {entry[0] for entry in fields_ref}
                for key in value:
                    if key not in known:
                        _fail(errors, pointer_join(pointer, key), "unknown field")
            if len(errors) > before:
                return INVALID
            try:
                return cls(**kwargs)
            except (ValueError, TypeError) as exc:
                _locate_validator_errors(fields_ref, kwargs, pointer, errors, exc)
                return INVALID

        self._decoders[cls] = decode
        attrs.resolve_types(cls)
        for field in attrs.fields(cls):
            if not field.init:
                continue
            init_name = field.alias or field.name
            required = field.default is attrs.NOTHING
            suffix = pointer_join("", init_name)
            fields_ref.append(
                (init_name, init_name, self.decoder(field.type), required, field, suffix)
            )
        return decode

    def _union_decoder(self, args: tuple[Any, ...]) -> Decoder:
        decoders = [self.decoder(a) for a in args]

        def decode(value: object, pointer: str, errors: Errors) -> Any:
            deeper: Errors | None = None
            for dec in decoders:
                scratch: Errors = []
                result = dec(value, pointer, scratch)
                if not scratch:
                    return result
                if deeper is None and any(e["pointer"] != pointer for e in scratch):
                    deeper = scratch  # the type fitted this branch; its inner errors tell more
            if deeper is not None:
                errors.extend(deeper)
                return INVALID
            names = " or ".join(_type_name(a) for a in args)
            return _fail(errors, pointer, f"expected {names}, got {_json_type_name(value)}")

        return decode

    def _list_decoder(self, item: Any, build: type) -> Decoder:
        item_decoder = self.decoder(item)

        def decode(value: object, pointer: str, errors: Errors) -> Any:
            if type(value) is not list:
                return _fail(errors, pointer, f"expected array, got {_json_type_name(value)}")
            before = len(errors)
            out = [item_decoder(v, pointer_join(pointer, i), errors) for i, v in enumerate(value)]
            if len(errors) > before:
                return INVALID
            return out if build is list else tuple(out)

        return decode

    def _dict_decoder(self, item: Any) -> Decoder:
        item_decoder = self.decoder(item)

        def decode(value: object, pointer: str, errors: Errors) -> Any:
            if type(value) is not dict:
                return _fail(errors, pointer, f"expected object, got {_json_type_name(value)}")
            before = len(errors)
            out = {k: item_decoder(v, pointer_join(pointer, k), errors) for k, v in value.items()}
            return INVALID if len(errors) > before else out

        return decode

    # -- JSON Schema ---------------------------------------------------------------
    def schema(self, tp: Any) -> dict[str, Any]:
        """JSON Schema (2020-12, as OpenAPI 3.1 uses) of ``tp``; attrs classes by $ref."""
        scalar = _SCALARS.get(tp)
        if scalar is not None:
            return dict(scalar[1])
        if isinstance(tp, type) and attrs.has(tp):
            return {"$ref": f"#/components/schemas/{self._component(tp)}"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"enum": [m.value for m in tp]}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(a) for a in args]}
        if origin in (list, tuple):
            return {"type": "array", "items": self.schema(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.schema(args[1])}
        raise TypeError(f"netkit.rest has no JSON Schema for {tp!r}")

    def _component(self, cls: type) -> str:
        name = cls.__name__
        owner = self._component_owner.get(name)
        if owner is cls:
            return name
        if owner is not None:
            raise ValueError(f"two shapes are called {name}: {owner!r} and {cls!r}")
        self._component_owner[name] = cls
        self.components[name] = {}  # placeholder: recursive shapes refer to themselves
        attrs.resolve_types(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            if not field.init:
                continue
            json_name = field.alias or field.name
            properties[json_name] = self.schema(field.type)
            if field.default is attrs.NOTHING:
                required.append(json_name)
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(f"{name}("):  # attrs' generated repr-like docstring
            schema["description"] = doc.split("\n\n", 1)[0]
        self.components[name] = schema
        return name


def _type_name(tp: Any) -> str:
    if tp is None or tp is type(None):
        return "null"
    return _JSON_TYPE.get(tp, getattr(tp, "__name__", str(tp)))


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    by_value = {m.value: m for m in cls}
    allowed = ", ".join(repr(v) for v in by_value)

    def decode(value: object, pointer: str, errors: Errors) -> Any:
        try:
            return by_value[value]
        except (KeyError, TypeError):
            return _fail(errors, pointer, f"expected one of {allowed}")

    return decode


def _literal_decoder(values: tuple[Any, ...]) -> Decoder:
    allowed = ", ".join(repr(v) for v in values)

    def decode(value: object, pointer: str, errors: Errors) -> Any:
        for candidate in values:
            if value == candidate and type(value) is type(candidate):
                return candidate
        return _fail(errors, pointer, f"expected one of {allowed}")

    return decode


def _locate_validator_errors(
    fields: list[tuple[str, str, Decoder, bool, attrs.Attribute[Any], str]],
    kwargs: dict[str, Any],
    pointer: str,
    errors: Errors,
    exc: Exception,
) -> None:
    """The class's own validators refused a value: find which field(s), for the pointers."""
    found = False
    for name, init_name, _, _, field, _ in fields:
        if field.validator is None or init_name not in kwargs:
            continue
        try:
            field.validator(None, field, kwargs[init_name])
        except (ValueError, TypeError) as field_exc:
            _fail(errors, pointer_join(pointer, name), _validator_message(field_exc))
            found = True
        except Exception:  # a validator that needs the instance: cannot run it alone
            continue
    if not found:
        _fail(errors, pointer, _validator_message(exc))


def _validator_message(exc: Exception) -> str:
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # attrs' instance_of and in_ put their message first
    return str(exc) or type(exc).__name__


# -- encoding -------------------------------------------------------------------------

_PRIMITIVE = frozenset({str, int, float, bool, type(None)})
_ENCODERS: dict[type, Callable[[Any], Any]] = {}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: attrs instances, enums, UUIDs and dates converted."""
    t = type(value)
    if t in _PRIMITIVE:
        return value
    if t is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [jsonable(v) for v in value]
    encoder = _ENCODERS.get(t)
    if encoder is None:
        encoder = _make_encoder(t)
    return encoder(value)


def _make_encoder(t: type) -> Callable[[Any], Any]:
    encoder: Callable[[Any], Any]
    if attrs.has(t):
        names = tuple((f.alias or f.name, f.name) for f in attrs.fields(t) if f.init)

        def encoder(obj: Any) -> Any:
            out = {}
            for json_name, attr in names:
                v = getattr(obj, attr)
                out[json_name] = v if type(v) in _PRIMITIVE else jsonable(v)
            return out

    elif issubclass(t, enum.Enum):

        def encoder(obj: Any) -> Any:
            return jsonable(obj.value)

    elif issubclass(t, uuid.UUID):
        encoder = str
    elif issubclass(t, datetime.date):  # datetime too

        def encoder(obj: Any) -> Any:
            return obj.isoformat()

    elif issubclass(t, list | tuple):

        def encoder(obj: Any) -> Any:
            return [jsonable(v) for v in obj]

    elif issubclass(t, dict):

        def encoder(obj: Any) -> Any:
            return {k: jsonable(v) for k, v in obj.items()}

    else:
        raise TypeError(f"netkit.rest cannot encode {t.__name__} as JSON")
    _ENCODERS[t] = encoder
    return encoder
