"""The generated OpenAPI 3.1 documents: valid, in sync with the checked-in contracts, and
describing what the server really sends."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
from openapi_spec_validator import validate

from netkit.examples.orders import make_api
from netkit.rest import RestAPI, RestRequest

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> dict[str, str]:
    spec = importlib.util.spec_from_loader(
        "gen_openapi",
        importlib.machinery.SourceFileLoader("gen_openapi", str(ROOT / "scripts/gen-openapi")),
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.CONTRACTS)


@pytest.mark.parametrize("path", sorted(contracts()))
def test_checked_in_contract_matches_the_code(path: str) -> None:
    factory = contracts()[path]
    module, _, name = factory.partition(":")
    api = getattr(importlib.import_module(module), name)()
    generated = json.dumps(api.openapi(), indent=2, ensure_ascii=False) + "\n"
    checked_in = (ROOT / path).read_text()
    assert generated == checked_in, f"{path} is out of date: run scripts/gen-openapi"
    validate(json.loads(checked_in))


def test_orders_document_is_valid_openapi_31() -> None:
    document = make_api().openapi()
    validate(document)
    assert document["openapi"] == "3.1.0"
    get = document["paths"]["/v1/orders/{order_id}"]["get"]
    assert get["parameters"] == [
        {
            "name": "order_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    ]
    create = document["components"]["schemas"]["CreateOrder"]
    assert create["required"] == ["sku", "quantity"]
    assert create["additionalProperties"] is False
    assert "/v2/orders/{order_id}" in document["paths"]


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_schemas_accept_what_the_shapes_accept_and_refuse_the_rest() -> None:
    document = make_api().openapi()
    create = _validator(document, "CreateOrderV2")
    assert create.is_valid({"lines": [{"sku": "a", "quantity": 1}], "priority": "express"})
    assert not create.is_valid({"lines": [{"sku": "a"}]})
    assert not create.is_valid({"lines": [], "extra": 1})
    assert not create.is_valid({"lines": [{"sku": "a", "quantity": 1}], "priority": "slow"})
    problem = _validator(document, "Problem")
    assert problem.is_valid(
        {
            "type": "about:blank",
            "title": "x",
            "status": 422,
            "detail": "d",
            "errors": [{"pointer": "#/a", "detail": "missing"}],
        }
    )


@attrs.frozen
class Thing:
    name: str


def test_operation_ids_are_unique_and_docstrings_become_summaries() -> None:
    api = RestAPI(title="t", version="1")

    async def handler(request: RestRequest[Any]) -> None:
        """Do the thing.

        At length."""

    api.route("GET", "/v1/a", handler)
    api.route("POST", "/v1/a", handler, body=Thing)
    document = api.openapi()
    validate(document)
    ops = document["paths"]["/v1/a"]
    assert ops["get"]["operationId"] != ops["post"]["operationId"]
    assert ops["get"]["summary"] == "Do the thing."
    assert ops["get"]["description"] == "At length."
