"""Typed query parameters (``query=``) as httpx sends them, over HTTP/1.1 and HTTP/2.

The server runs in a thread of its own for the whole module, so hypothesis can drive a
plain ``httpx.Client`` through many examples without starting a server for each.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

from netkit import serve
from netkit.examples.order_service._rest import add_order_routes
from netkit.examples.order_service._store import OrderStore
from netkit.rest import RestAPI, RestRequest

pytestmark = pytest.mark.interop


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Search:
    q: str
    limit: int = 10
    ratio: float | None = None
    exact: bool = False
    colour: Colour | None = None
    level: Level = Level.LOW
    tags: list[str] = attrs.Factory(list)
    sizes: tuple[int, ...] = ()


def make_api() -> RestAPI:
    api = RestAPI()

    @api.get("/v1/search", query=Search)
    async def search(request: RestRequest[None]) -> dict[str, Any]:
        args: Search = request.query_args
        return {"args": args, "types": {k: type(v).__name__ for k, v in vars_of(args).items()}}

    add_order_routes(api, OrderStore())
    return api


def vars_of(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in attrs.fields(type(value))}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, make_api(), "127.0.0.1", 0)
            started.put((server.port, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    port, token, scope = started.get(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture(scope="module", params=[False, True], ids=["http1.1", "h2"])
def client(request: pytest.FixtureRequest, base: str) -> Iterator[httpx.Client]:
    http2 = request.param
    with httpx.Client(base_url=base, http1=not http2, http2=http2, timeout=5.0) as c:
        yield c


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(
    q=TEXT,
    limit=st.none() | st.integers(-(10**30), 10**30),
    ratio=st.none() | FINITE,
    exact=st.none() | st.booleans(),
    colour=st.none() | st.sampled_from(Colour),
    level=st.none() | st.sampled_from(Level),
    tags=st.lists(TEXT, max_size=3),
    sizes=st.lists(st.integers(-1000, 1000), max_size=3),
)
def test_valid_values_round_trip(
    client: httpx.Client,
    q: str,
    limit: int | None,
    ratio: float | None,
    exact: bool | None,
    colour: Colour | None,
    level: Level | None,
    tags: list[str],
    sizes: list[int],
) -> None:
    params: dict[str, Any] = {"q": q, "tags": tags, "sizes": sizes}
    if limit is not None:
        params["limit"] = limit
    if ratio is not None:
        params["ratio"] = ratio
    if exact is not None:
        params["exact"] = exact  # httpx sends "true" / "false"
    if colour is not None:
        params["colour"] = colour.value
    if level is not None:
        params["level"] = level.value
    resp = client.get("/v1/search", params=params)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["args"] == {
        "q": q,
        "limit": 10 if limit is None else limit,
        "ratio": ratio,
        "exact": bool(exact),
        "colour": None if colour is None else colour.value,
        "level": (level or Level.LOW).value,
        "tags": tags,
        "sizes": sizes,
    }
    assert got["types"]["limit"] == "int" and got["types"]["sizes"] == "tuple"
    assert got["types"]["level"] == "Level" and got["types"]["exact"] == "bool"


def int_text(text: str) -> bool:
    """An oracle written apart from the decoder: ASCII digits, one optional leading '-'."""
    digits = text[1:] if text.startswith("-") else text
    return 0 < len(digits) <= 40 and all(c in "0123456789" for c in digits)


BOOL_TEXTS = {"true": True, "false": False, "1": True, "0": False}
BAD_FLOATS = ["nan", "inf", "-inf", "1_0", "", " 1", "1.", ".5", "0x10", "1e999", "1,5", "e3"]


def problem_at(resp: httpx.Response, pointer: str) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 422 and body["title"] == "Query parameters failed validation"
    assert pointer in [e["pointer"] for e in body["errors"]], body
    assert pointer in body["detail"]


@given(
    name=st.sampled_from(["limit", "exact", "colour", "level", "sizes"]),
    text=TEXT | st.sampled_from(["7", "-3", "TRUE", "0", "red", "2", "--1", "1e3"]),
)
def test_each_text_is_accepted_or_refused_naming_the_parameter(
    client: httpx.Client, name: str, text: str
) -> None:
    resp = client.get("/v1/search", params={"q": "x", name: text})
    ok = {
        "limit": int_text(text),
        "sizes": int_text(text),
        "exact": text.lower() in BOOL_TEXTS,
        "colour": text in ("red", "green"),
        "level": text in ("1", "2"),
    }[name]
    if not ok:
        problem_at(resp, "/query/sizes/0" if name == "sizes" else f"/query/{name}")
        return
    assert resp.status_code == 200, resp.text
    value = resp.json()["args"][name]
    if name == "limit":
        assert value == int(text)
    elif name == "sizes":
        assert value == [int(text)]
    elif name == "exact":
        assert value is BOOL_TEXTS[text.lower()]
    else:
        assert str(value) == text


@given(text=st.sampled_from(BAD_FLOATS) | st.text(st.characters(categories=("L",)), min_size=1))
def test_bad_numbers_are_refused(client: httpx.Client, text: str) -> None:
    problem_at(client.get("/v1/search", params={"q": "x", "ratio": text}), "/query/ratio")


def test_missing_repeated_and_several_at_once(client: httpx.Client) -> None:
    problem_at(client.get("/v1/search"), "/query/q")
    problem_at(client.get("/v1/search?q=a&q=b"), "/query/q")
    resp = client.get("/v1/search?limit=x&exact=maybe&sizes=1&sizes=two")
    assert resp.status_code == 422
    assert [e["pointer"] for e in resp.json()["errors"]] == [
        "/query/q",
        "/query/limit",
        "/query/exact",
        "/query/sizes/1",
    ]
    # Parameters the class does not declare are ignored (cache busters, tracking).
    assert client.get("/v1/search?q=a&_=12345&utm_source=x").status_code == 200


def test_orders_list_uses_typed_paging(client: httpx.Client) -> None:
    for customer in ("alice", "bob", "alice"):
        item = {"sku": "book", "quantity": 1, "unit_price_cents": 100}
        created = client.post("/v1/orders", json={"customer_id": customer, "items": [item]})
        assert created.status_code == 201, created.text
    alice = client.get("/v1/orders", params={"customer_id": "alice", "status": "pending"})
    assert [o["customer_id"] for o in alice.json()["orders"]][:2] == ["alice", "alice"]
    page = client.get("/v1/orders", params={"page_size": 1}).json()
    assert len(page["orders"]) == 1 and page["next_page_token"] is not None
    problem_at(client.get("/v1/orders", params={"status": "lost"}), "/query/status")
    problem_at(client.get("/v1/orders", params={"page_size": 0}), "/query/page_size")
    problem_at(client.get("/v1/orders", params={"page_size": 501}), "/query/page_size")
    problem_at(client.get("/v1/orders", params={"page_size": "ten"}), "/query/page_size")


def test_served_document_lists_query_parameters(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    validate(document)
    parameters = document["paths"]["/v1/search"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert list(by_name) == ["q", "limit", "ratio", "exact", "colour", "level", "tags", "sizes"]
    assert all(p["in"] == "query" for p in parameters)
    assert [n for n, p in by_name.items() if p["required"]] == ["q"]
    assert by_name["limit"]["schema"] == {"type": "integer", "default": 10}
    assert by_name["level"]["schema"] == {"enum": [1, 2], "default": 1}
    assert by_name["sizes"]["schema"] == {
        "type": "array",
        "items": {"type": "integer"},
        "default": [],
    }
    assert "422" in document["paths"]["/v1/search"]["get"]["responses"]
    status = {p["name"]: p for p in document["paths"]["/v1/orders"]["get"]["parameters"]}
    assert status["status"]["schema"]["enum"][0] == "pending"
