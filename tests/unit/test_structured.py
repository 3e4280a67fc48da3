from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.structured import SCHEMA_PARAM, StructuredOutput, StructuredOutputViolation
from schemas.requests import JsonObjectFormat, JsonSchemaFormat, JsonSchemaSpec, TextFormat

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_formats_become_guided_decoding() -> None:
    assert StructuredOutput(None).guided is None and StructuredOutput(TextFormat()).guided is None
    assert StructuredOutput(JsonObjectFormat()).guided.kind == "json_object"  # type: ignore[union-attr]
    guided = StructuredOutput(JsonSchemaFormat(JsonSchemaSpec("n", SCHEMA))).guided
    assert guided is not None and guided.kind == "json_schema" and guided.schema == SCHEMA


def test_bad_schemas_name_the_field() -> None:
    for schema in ({"type": 5}, {"properties": {"n": {"minimum": "x"}}}):
        with pytest.raises(InvalidRequest) as caught:
            StructuredOutput(JsonSchemaFormat(JsonSchemaSpec("n", schema)))
        assert caught.value.param == SCHEMA_PARAM


def test_only_strict_requests_check_the_output() -> None:
    loose = StructuredOutput(JsonSchemaFormat(JsonSchemaSpec("n", SCHEMA)))
    assert not loose.checks_output
    loose.check_output("not json")  # nothing to enforce
    strict = StructuredOutput(JsonSchemaFormat(JsonSchemaSpec("n", SCHEMA, strict=True)))
    strict.check_output('{"n": 3}')
    with pytest.raises(StructuredOutputViolation, match="not valid JSON"):
        strict.check_output('{"n": ')
    with pytest.raises(StructuredOutputViolation, match="at n"):
        strict.check_output('{"n": "three"}')
