"""Path templates and the route table: which endpoint serves ``METHOD /path``.

Theory of operation
-------------------
A template is a ``/``-separated list of segments; a segment is either literal text or a
whole-segment parameter ``{name}`` / ``{name:converter}`` (converters: ``str``, the
default, one non-empty segment; ``int``, ASCII digits; ``uuid``, a canonical UUID).

Templates are compiled once, at registration, into a trie: each node holds a dict of
literal children and a short list of parameter children. Fully literal templates are
also kept in one dict keyed by the whole path, so the common case costs one dict lookup.
A request path is split once and walked down the trie; no regular expression runs per
request.

Precedence, when several templates match one path: compare the templates segment by
segment from the left, and at the first difference a literal beats a typed parameter
(``int``, ``uuid``), which beats a ``str`` parameter. The walk tries children in exactly
that order, so the first complete match it finds is the most specific template.

The endpoint for ``METHOD`` is the one of the most specific template that has ``METHOD``
(``HEAD`` falls back to ``GET``); if the path matches templates but none has the method,
the answer is 405 and ``Allow`` lists the methods of every template matching the path,
plus ``HEAD`` where there is ``GET``, and ``OPTIONS``, which the REST layer always answers.

Path segments are percent-decoded one by one after splitting, so ``%2F`` stays inside
its segment. ``/v1/orders`` and ``/v1/orders/`` are different paths (no redirects).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar
from urllib.parse import unquote

import attrs

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERSION = re.compile(r"v[0-9]+\Z")
ALWAYS_ALLOWED = "OPTIONS"


def _to_int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValueError(text)
    return int(text)


def _to_str(text: str) -> str:
    if not text:
        raise ValueError(text)
    return text


def _to_uuid(text: str) -> uuid.UUID:
    if len(text) != 36:
        raise ValueError(text)
    return uuid.UUID(text)


@attrs.frozen
class Converter:
    """Turns one path segment into a handler's value; ``ValueError`` means "no match"."""

    name: str
    convert: Callable[[str], object]
    #: JSON schema of the parameter, for the OpenAPI document.
    schema: dict[str, object]
    #: Lower is tried first: typed parameters before ``str``.
    rank: int


CONVERTERS: dict[str, Converter] = {
    c.name: c
    for c in (
        Converter("int", _to_int, {"type": "integer", "minimum": 0}, 0),
        Converter("uuid", _to_uuid, {"type": "string", "format": "uuid"}, 0),
        Converter("str", _to_str, {"type": "string", "minLength": 1}, 1),
    )
}


@attrs.frozen
class Segment:
    """One template segment: literal ``text``, or a parameter ``name`` with its converter."""

    text: str
    param: str | None = None
    converter: Converter | None = None


def parse_template(template: str) -> tuple[Segment, ...]:
    """Split and check a template; ``ValueError`` says what is wrong with it."""
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    segments: list[Segment] = []
    names: set[str] = set()
    for part in template[1:].split("/"):
        if part.startswith("{") and part.endswith("}"):
            name, _, conv = part[1:-1].partition(":")
            conv = conv or "str"
            if not _NAME.match(name):
                raise ValueError(f"bad parameter name {name!r} in {template!r}")
            if conv not in CONVERTERS:
                raise ValueError(
                    f"unknown converter {conv!r} in {template!r} (known: {', '.join(CONVERTERS)})"
                )
            if name in names:
                raise ValueError(f"parameter {name!r} appears twice in {template!r}")
            names.add(name)
            segments.append(Segment(part, name, CONVERTERS[conv]))
        elif "{" in part or "}" in part:
            raise ValueError(f"a parameter must be a whole segment: {part!r} in {template!r}")
        else:
            segments.append(Segment(part))
    return tuple(segments)


def openapi_path(segments: tuple[Segment, ...]) -> str:
    """The template as OpenAPI writes it: ``/v1/orders/{order_id}`` without converters."""
    return "/" + "/".join(f"{{{s.param}}}" if s.param else s.text for s in segments)


class Resource(Generic[T]):
    """One template and its endpoints by method."""

    __slots__ = ("endpoints", "segments", "template")

    def __init__(self, template: str, segments: tuple[Segment, ...]) -> None:
        self.template = template
        self.segments = segments
        self.endpoints: dict[str, T] = {}

    def find(self, method: str) -> T | None:
        endpoint = self.endpoints.get(method)
        if endpoint is None and method == "HEAD":
            endpoint = self.endpoints.get("GET")
        return endpoint

    def allowed(self) -> set[str]:
        methods = set(self.endpoints) | {ALWAYS_ALLOWED}
        if "GET" in methods:
            methods.add("HEAD")
        return methods


class _Node(Generic[T]):
    __slots__ = ("literal", "params", "resource")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[T]] = {}
        self.params: list[tuple[Converter, str, _Node[T]]] = []
        self.resource: Resource[T] | None = None


class Found(Generic[T]):
    """The endpoint for a request and the converted path parameters."""

    __slots__ = ("endpoint", "params", "resource")

    def __init__(self, endpoint: T, resource: Resource[T], params: dict[str, object]) -> None:
        self.endpoint = endpoint
        self.resource = resource
        self.params = params


@attrs.frozen
class NotAllowed:
    """The path exists but not with this method; ``allowed`` is for the ``Allow`` header."""

    allowed: frozenset[str]


class Router(Generic[T]):
    """The route table. Register with :meth:`add`; look up with :meth:`match`."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._literal: dict[str, Resource[T]] = {}
        self.resources: list[Resource[T]] = []
        #: API versions seen as the first segment of templates (``v1``, ``v2``...).
        self.versions: set[str] = set()

    def add(self, method: str, template: str, endpoint: T) -> Resource[T]:
        segments = parse_template(template)
        node = self._root
        for seg in segments:
            if seg.converter is None:
                node = node.literal.setdefault(seg.text, _Node())
                continue
            for conv, name, child in node.params:
                if conv is seg.converter:
                    if name != seg.param:
                        raise ValueError(
                            f"{template!r}: parameter {{{seg.param}}} is {{{name}}} in another "
                            "route at the same position"
                        )
                    node = child
                    break
            else:
                child = _Node()
                assert seg.param is not None
                node.params.append((seg.converter, seg.param, child))
                node.params.sort(key=lambda item: item[0].rank)  # stable: typed first
                node = child
        if node.resource is None:
            node.resource = Resource(template, segments)
            self.resources.append(node.resource)
            if all(s.param is None for s in segments):
                self._literal[template] = node.resource
            if segments and _VERSION.match(segments[0].text) and segments[0].param is None:
                self.versions.add(segments[0].text)
        resource = node.resource
        method = method.upper()
        if method in resource.endpoints:
            raise ValueError(f"{method} {template} is already registered")
        resource.endpoints[method] = endpoint
        return resource

    def match(self, method: str, path: str) -> Found[T] | NotAllowed | None:
        """The endpoint for ``method path``, a :class:`NotAllowed`, or ``None`` (404)."""
        literal = self._literal.get(path)
        if literal is not None:
            endpoint = literal.find(method)
            if endpoint is not None:
                return Found(endpoint, literal, {})
        if not path.startswith("/"):
            return None
        parts = path[1:].split("/")
        if "%" in path:
            try:
                parts = [unquote(p, errors="strict") if "%" in p else p for p in parts]
            except UnicodeDecodeError:
                return None  # not UTF-8 after decoding: no template can name it
        found = _first(self._root, parts, method)
        if found is not None:
            return found
        allowed: set[str] = set()
        for resource, params in _walk(self._root, parts, 0, {}):
            endpoint = resource.find(method)
            if endpoint is not None:
                return Found(endpoint, resource, params)
            allowed |= resource.allowed()
        if not allowed:
            return None
        return NotAllowed(frozenset(allowed))


def _first(node: _Node[T], parts: list[str], method: str) -> Found[T] | None:
    """The common case without backtracking: follow the most specific child at each
    segment; if that path ends in a resource with ``method``, it is the answer (it is
    the first one :func:`_walk` would find). Otherwise ``None``: take the full walk."""
    params: dict[str, object] = {}
    for part in parts:
        child = node.literal.get(part)
        if child is None:
            for conv, name, candidate in node.params:
                try:
                    params[name] = conv.convert(part)
                except ValueError:
                    continue
                child = candidate
                break
            else:
                return None
        node = child
    resource = node.resource
    if resource is None:
        return None
    endpoint = resource.find(method)
    return None if endpoint is None else Found(endpoint, resource, params)


def _walk(
    node: _Node[T], parts: list[str], i: int, params: dict[str, object]
) -> Iterator[tuple[Resource[T], dict[str, object]]]:
    """Every (resource, params) matching ``parts[i:]`` below ``node``, most specific first."""
    if i == len(parts):
        if node.resource is not None:
            yield node.resource, dict(params)
        return
    part = parts[i]
    child = node.literal.get(part)
    if child is not None:
        yield from _walk(child, parts, i + 1, params)
    for conv, name, child in node.params:
        try:
            value = conv.convert(part)
        except ValueError:
            continue
        params[name] = value
        yield from _walk(child, parts, i + 1, params)
        del params[name]


def requested_version(path: str) -> str | None:
    """The ``vN`` first segment of ``path``, if it has one."""
    first = path[1:].split("/", 1)[0]
    return first if _VERSION.match(first) else None
