"""GET /openapi.json: an OpenAPI 3.1 document of every route the gateway serves, generated from
the route table (gateway/http/routes.py: each route's method, path, summary, request and
response Structs) and the msgspec Structs' JSON Schemas; every route can answer with the
OpenAI error envelope."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from gateway.access import Access
from gateway.version import VERSION
from schemas.errors import ErrorEnvelope

_PATH_PARAMETER = re.compile(r"\{(\w+)(?::([^}]+))?\}")
_REF = "#/components/schemas/{name}"


class DocumentedRoute(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def request(self) -> type | None: ...
    @property
    def response(self) -> type | None: ...
    @property
    def events(self) -> Any: ...
    @property
    def access(self) -> Access: ...


def openapi_document(routes: Sequence[DocumentedRoute]) -> dict[str, Any]:
    types: list[type] = [ErrorEnvelope]
    for route in routes:
        types += [kind for kind in (route.request, route.response, route.events) if kind is not None]
    schemas, components = msgspec.json.schema_components(list(dict.fromkeys(types)), ref_template=_REF)
    refs: dict[type, Any] = dict(zip(dict.fromkeys(types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path, parameters = _openapi_path(route.path)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": _operation_id(route.method, path),
            "responses": _responses(route, refs),
        }
        if parameters:
            operation["parameters"] = parameters
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[route.request]}},
            }
        if route.access is Access.OPEN:
            operation["security"] = []
        elif route.access is Access.ADMIN_KEY:
            operation["security"] = [{"adminKey": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triton-openai-gateway",
            "version": VERSION,
            "description": "An OpenAI-compatible API for NVIDIA Triton Inference Server.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "one of --api-key, when any is set"},
                "adminKey": {"type": "http", "scheme": "bearer", "description": "--admin-api-key"},
            },
        },
        "security": [{"apiKey": []}],
    }


def _openapi_path(path: str) -> tuple[str, list[dict[str, Any]]]:
    """aiohttp's `{name}` and `{name:regex}` as OpenAPI path parameters."""
    parameters = []
    for name, pattern in _PATH_PARAMETER.findall(path):
        schema: dict[str, Any] = {"type": "string"}
        if pattern and re.fullmatch(r"[\w|-]+", pattern):
            schema["enum"] = pattern.split("|")
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PATH_PARAMETER.sub(lambda match: "{" + match.group(1) + "}", path), parameters


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path)
    return "_".join([method.lower(), *words]) or method.lower()


def _responses(route: DocumentedRoute, refs: dict[type, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if route.response is not None:
        content["application/json"] = {"schema": refs[route.response]}
    if route.events is not None:
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": "server-sent events: `data: <chunk>`, then `data: [DONE]`"},
            "x-event-schema": refs[route.events],
        }
    ok: dict[str, Any] = {"description": "OK"}
    if content:
        ok["content"] = content
    if route.path.startswith("/v2"):  # Triton's own API: its JSON, its error shape
        kserve_error = {"type": "object", "properties": {"error": {"type": "string"}}}
        error = {
            "description": "an error, in KServe's shape",
            "content": {"application/json": {"schema": kserve_error}},
        }
    else:
        envelope = {"schema": refs[ErrorEnvelope]}
        error = {"description": "an error, in OpenAI's envelope", "content": {"application/json": envelope}}
    return {"200": ok, "default": error}
