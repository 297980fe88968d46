"""The route table against a reference model: random tables, random paths."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from netkit.rest._routing import Found, NotAllowed, Router, parse_template, requested_version

LITERALS = ["a", "v1", "7"]
CONVERTERS = ["int", "str", "uuid"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
A_UUID = "12345678-1234-5678-1234-567812345678"


def segment_strategy(position: int) -> st.SearchStrategy[str]:
    # Parameter names follow position and converter, so no table has conflicting names.
    return st.one_of(
        st.sampled_from(LITERALS),
        st.sampled_from(CONVERTERS).map(lambda c: f"{{p{position}_{c}:{c}}}"),
    )


@st.composite
def templates(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from([1, 1, 2, 2, 3, 0]))
    return "/" + "/".join(draw(segment_strategy(i)) for i in range(n))


tables = st.dictionaries(
    templates(),
    st.sets(st.sampled_from(["GET", "POST", "DELETE"]), min_size=1, max_size=2),
    max_size=10,
)
paths = st.lists(
    st.sampled_from([*LITERALS, "0", "123", "x", "", A_UUID, "%37", "a%2Fb"]), max_size=4
).map(lambda parts: "/" + "/".join(parts))


def _model_segment(template_seg: str, part: str) -> tuple[bool, int, object]:
    """(matches, rank, converted value) of one template segment against a decoded part."""
    if not template_seg.startswith("{"):
        return template_seg == part, 0, None
    conv = template_seg[1:-1].split(":")[1]
    if conv == "int":
        ok = part.isascii() and part.isdigit() and len(part) <= 18
        return ok, 1, int(part) if ok else None
    if conv == "uuid":
        try:
            return len(part) == 36, 1, uuid.UUID(part)
        except ValueError:
            return False, 1, None
    return part != "", 2, part


def model(table: dict[str, set[str]], method: str, path: str) -> tuple[str, object]:
    from urllib.parse import unquote

    parts = [unquote(p) for p in path[1:].split("/")]
    candidates = []
    for template, methods in table.items():
        segs = template[1:].split("/")
        if len(segs) != len(parts):
            continue
        results = [_model_segment(s, p) for s, p in zip(segs, parts, strict=True)]
        if all(ok for ok, _, _ in results):
            params = {
                s[1:-1].split(":")[0]: value
                for s, (_, _, value) in zip(segs, results, strict=True)
                if s.startswith("{")
            }
            candidates.append((tuple(rank for _, rank, _ in results), template, methods, params))
    candidates.sort(key=lambda c: c[0])
    for _, template, methods, params in candidates:
        if method in methods or (method == "HEAD" and "GET" in methods):
            return "found", (template, params)
    if not candidates:
        return "404", None
    allowed = {"OPTIONS"}
    for _, _, methods, _ in candidates:
        allowed |= methods
        if "GET" in methods:
            allowed.add("HEAD")
    return "405", allowed


@st.composite
def table_and_path(draw: st.DrawFn) -> tuple[dict[str, set[str]], str]:
    """A table, and a path that is usually an instance of one of its templates."""
    table = draw(tables)
    if table and draw(st.integers(0, 4)):
        template = draw(st.sampled_from(sorted(table)))
        values = st.sampled_from(["7", "7", "x", A_UUID, "a"])
        parts = [draw(values) if seg.startswith("{") else seg for seg in template[1:].split("/")]
        return table, "/" + "/".join(parts)
    return table, draw(paths)


@given(table_and_path(), st.sampled_from(["GET", "POST", "DELETE", "HEAD", "OPTIONS"]))
@example(({"/{p0_int:int}": {"GET"}, "/{p0_str:str}": {"GET"}}, "/7"), "GET")
@example(({"/a/{p1_str:str}": {"GET"}, "/{p0_str:str}/7": {"POST"}}, "/a/7"), "PUT")
def test_router_agrees_with_the_model(case: tuple[dict[str, set[str]], str], method: str) -> None:
    table, path = case
    router: Router[str] = Router()
    for template, methods in table.items():
        for m in sorted(methods):
            router.add(m, template, template)
    got = router.match(method, path)
    kind, detail = model(table, method, path)
    if kind == "found":
        assert isinstance(got, Found), (kind, detail, got)
        assert (got.endpoint, got.params) == detail
    elif kind == "405":
        assert isinstance(got, NotAllowed)
        assert set(got.allowed) == detail
    else:
        assert got is None


def test_literal_beats_parameter_and_typed_beats_str() -> None:
    router: Router[str] = Router()
    router.add("GET", "/v1/orders/{order_id:int}", "by-id")
    router.add("GET", "/v1/orders/{slug}", "by-slug")
    router.add("GET", "/v1/orders/latest", "latest")
    assert router.match("GET", "/v1/orders/latest").endpoint == "latest"  # type: ignore[union-attr]
    found = router.match("GET", "/v1/orders/42")
    assert (
        isinstance(found, Found) and found.endpoint == "by-id" and found.params == {"order_id": 42}
    )
    found = router.match("GET", "/v1/orders/forty-two")
    assert isinstance(found, Found) and found.params == {"slug": "forty-two"}


def test_a_method_missing_on_the_best_match_falls_back_to_a_less_specific_template() -> None:
    router: Router[str] = Router()
    router.add("POST", "/orders/new", "create")
    router.add("GET", "/orders/{name}", "read")
    found = router.match("GET", "/orders/new")
    assert isinstance(found, Found) and found.endpoint == "read"
    not_allowed = router.match("DELETE", "/orders/new")
    assert isinstance(not_allowed, NotAllowed)
    assert not_allowed.allowed == {"GET", "HEAD", "OPTIONS", "POST"}


def test_percent_decoding_is_per_segment() -> None:
    router: Router[str] = Router()
    router.add("GET", "/files/{name}", "file")
    found = router.match("GET", "/files/a%2Fb")
    assert isinstance(found, Found) and found.params == {"name": "a/b"}
    assert router.match("GET", "/files/%ff") is None  # not UTF-8


@pytest.mark.parametrize(
    "template",
    ["orders", "/a/{x", "/a/{1x}", "/a/{x:float}", "/a/{x}/{x}", "/a/pre{x}"],
)
def test_bad_templates_are_refused_at_registration(template: str) -> None:
    with pytest.raises(ValueError):
        parse_template(template)


def test_conflicting_parameter_names_and_duplicates_are_refused() -> None:
    router: Router[str] = Router()
    router.add("GET", "/a/{x}", "one")
    with pytest.raises(ValueError, match="parameter"):
        router.add("GET", "/a/{y}/b", "two")
    with pytest.raises(ValueError, match="already registered"):
        router.add("GET", "/a/{x}", "three")


def test_versions_are_collected() -> None:
    router: Router[str] = Router()
    router.add("GET", "/v1/a", "a")
    router.add("GET", "/v12/a", "a")
    router.add("GET", "/{x}/a", "a")
    assert router.versions == {"v1", "v12"}
    assert requested_version("/v9/orders") == "v9"
    assert requested_version("/orders") is None
