"""/openapi.json: a valid OpenAPI 3.1 document covering every route, with the error envelope."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from gateway.http.routes import kserve_routes, openai_routes
from gateway.openapi import openapi_document
from gateway.settings import Settings


def test_the_document_is_valid_openapi_and_covers_every_route() -> None:
    routes = [*openai_routes(Settings()), *kserve_routes(Settings())]
    document = openapi_document(routes)
    validate(document)  # raises on anything OpenAPI 3.1 does not allow
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    expected = {(route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)) for route in routes}
    assert operations == expected


def test_schemas_come_from_the_structs() -> None:
    document = openapi_document(openai_routes(Settings()))
    chat = document["paths"]["/v1/chat/completions"]["post"]
    request = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = document["components"]["schemas"][request]
    assert {"model", "messages"} <= set(schema["properties"]) and "messages" in schema["required"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    error = chat["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorEnvelope")
    assert document["paths"]["/health/live"]["get"]["security"] == []  # open to probes
    control = document["paths"]["/v1/models/{model}/{action}"]["post"]
    assert control["security"] == [{"adminKey": []}]
    assert {
        "name": "action",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["load", "unload"]},
    } in control["parameters"]
