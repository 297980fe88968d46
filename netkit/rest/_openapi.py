"""The OpenAPI 3.1 document of a :class:`RestAPI`, built from its routes and shapes.

Everything in it comes from registration data: templates (parameters and their
converters' schemas), ``query=`` classes (``in: query`` parameters), ``body=`` and
``response=`` shapes (JSON Schema 2020-12 under ``components/schemas``), the success
status, the handler's docstring (summary and description), and the answers the layer
itself gives (problem+json for 4xx/5xx, 304 and ``ETag`` on GET, 412 with ``etag=``,
``Idempotency-Key`` on POST/PATCH). The output is deterministic (routes in registration
order, no timestamps), so a checked-in copy can be compared byte for byte.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._routing import openapi_path

if TYPE_CHECKING:
    from ._api import Endpoint, RestAPI

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string", "description": "JSON pointer, '#/field'"},
                    "detail": {"type": "string"},
                },
                "required": ["pointer", "detail"],
            },
        },
    },
    "required": ["status", "detail"],
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Response"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _operation(api: RestAPI, ep: Endpoint, params: list[dict[str, Any]], op_id: str) -> Any:
    doc = (ep.handler.__doc__ or "").strip()
    summary = ep.summary or (doc.splitlines()[0].strip() if doc else op_id)
    op: dict[str, Any] = {"operationId": op_id, "summary": summary}
    rest = doc.split("\n\n", 1)[1].strip() if "\n\n" in doc else ""
    if rest:
        op["description"] = " ".join(rest.split())
    if ep.tags:
        op["tags"] = list(ep.tags)
    parameters = list(params)
    if ep.query_decoder is not None:
        parameters.extend(ep.query_decoder.openapi_parameters())
    if ep.method in ("POST", "PATCH"):
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Runs the request once; a retry with the same key and body "
                "gets the stored response.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if ep.etag is not None and ep.method in ("POST", "PUT", "PATCH", "DELETE"):
        parameters.append(
            {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        )
    if parameters:
        op["parameters"] = parameters
    if ep.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": api.shapes.schema(ep.body)}},
        }
    success: dict[str, Any] = {"description": _phrase(ep.status)}
    if ep.response is not None and ep.status != 204:
        success["content"] = {"application/json": {"schema": api.shapes.schema(ep.response)}}
    if ep.method == "GET" and ep.status == 200:
        success["headers"] = {"ETag": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(ep.status): success}
    if ep.method == "GET":
        responses["304"] = {"description": "Not Modified (If-None-Match matched the ETag)"}
    if ep.body is not None:
        responses["400"] = _problem("Malformed JSON")
        responses["415"] = _problem("Unsupported content type or encoding")
        responses["422"] = _problem("The body does not match the declared shape")
    if ep.query_decoder is not None:
        responses["422"] = _problem(
            "The query parameters or the body do not match the declared shapes"
            if ep.body is not None
            else "A query parameter is missing, repeated or of the wrong type"
        )
    if params:
        responses["404"] = _problem("No such resource")
    if ep.method in ("POST", "PATCH"):
        responses["409"] = _problem("A request with this Idempotency-Key is still running")
        responses.setdefault("422", _problem("Idempotency-Key reused for another request"))
    if ep.etag is not None and ep.method in ("POST", "PUT", "PATCH", "DELETE"):
        responses["412"] = _problem("Precondition failed (stale If-Match)")
    responses["default"] = _problem("Error")
    op["responses"] = responses
    return op


def build_openapi(api: RestAPI) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    used_ids: set[str] = set()
    for resource in api.router.resources:
        params = [
            {
                "name": seg.param,
                "in": "path",
                "required": True,
                "schema": dict(seg.converter.schema),
            }
            for seg in resource.segments
            if seg.param is not None and seg.converter is not None
        ]
        item: dict[str, Any] = {}
        for method, ep in resource.endpoints.items():
            op_id = getattr(ep.handler, "__name__", "operation")
            if op_id in used_ids:
                op_id = f"{op_id}_{method.lower()}_{len(used_ids)}"
            used_ids.add(op_id)
            item[method.lower()] = _operation(api, ep, params, op_id)
        paths[openapi_path(resource.segments)] = item
    schemas = dict(sorted(api.shapes.components.items()))
    schemas["Problem"] = PROBLEM_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
