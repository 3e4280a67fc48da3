"""Structured outputs: `response_format` checked and turned into guided decoding, and the
final text of a `strict` JSON schema request validated before it is passed on."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from gateway.backends.base import GuidedDecoding
from gateway.errors import APIError, InvalidRequest
from schemas.requests import JsonObjectFormat, JsonSchemaFormat, ResponseFormat, TextFormat

SCHEMA_PARAM = "response_format.json_schema.schema"


class StructuredOutputViolation(APIError):
    """The model's output does not match the schema a strict request asked for."""

    status = 502
    default_code = "structured_output_violation"


def check_schema(schema: dict[str, Any], param: str) -> Validator:
    """A validator for `schema`; a 400 naming `param` when the schema itself is invalid."""
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        detail = f" (at '{where}')" if where else ""
        raise InvalidRequest(f"Invalid JSON schema{detail}: {exc.message}", param=param) from None
    return validator_class(schema)


class StructuredOutput:
    """What a request's response_format asks of the backend and of the final text."""

    __slots__ = ("_validator", "guided")

    def __init__(self, response_format: ResponseFormat | None) -> None:
        self.guided: GuidedDecoding | None = None
        self._validator: Validator | None = None
        if response_format is None or isinstance(response_format, TextFormat):
            return
        if isinstance(response_format, JsonObjectFormat):
            self.guided = GuidedDecoding("json_object")
            return
        assert isinstance(response_format, JsonSchemaFormat)
        schema = response_format.json_schema.schema
        if schema is None:
            raise InvalidRequest("response_format.json_schema needs a schema.", param=SCHEMA_PARAM)
        validator = check_schema(schema, SCHEMA_PARAM)
        self.guided = GuidedDecoding("json_schema", schema)
        if response_format.json_schema.strict:
            self._validator = validator

    @property
    def checks_output(self) -> bool:
        return self._validator is not None

    def check_output(self, text: str) -> None:
        """Raise StructuredOutputViolation when a strict request's output is not valid."""
        if self._validator is None:
            return
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise StructuredOutputViolation(f"The model's output is not valid JSON: {exc}") from None
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise StructuredOutputViolation(f"The model's output does not match the schema at {where}: {error.message}")
