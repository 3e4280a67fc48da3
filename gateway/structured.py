"""Structured outputs: `response_format` checked and turned into guided decoding, and the
final text of a `strict` JSON schema request validated before it is passed on.

A client's schema is bounded first (gateway.schema_limits) and then checked by jsonschema;
both, and the check of the output, are CPU work on client input, so the async entry points
run them in a schema-check thread (gateway.schema_check)."""

from __future__ import annotations

import json
import time
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from gateway.errors import APIError, InvalidRequest
from gateway.generation import GuidedDecoding
from gateway.schema_check import PATTERN_TIMEOUT, CheckAborted, SchemaChecker, off_loop
from gateway.schema_limits import check_schema_limits
from schemas.requests import JsonObjectFormat, JsonSchemaFormat, ResponseFormat, TextFormat

SCHEMA_PARAM = "response_format.json_schema.schema"
# Seconds all strict-output checks of one request may take together (a value of a few KB
# takes milliseconds); past it the output is reported as not checkable.
OUTPUT_CHECK_BUDGET = 1.0


class StructuredOutputViolation(APIError):
    """The model's output does not match the schema a strict request asked for."""

    status = 502
    default_code = "structured_output_violation"


def check_schema(schema: dict[str, Any], param: str) -> SchemaChecker:
    """A checker for `schema`; a 400 naming `param` when the schema is past the bounds or
    invalid. CPU-bound: from the event loop, call it through `off_loop`."""
    facts = check_schema_limits(schema, param)
    validator_class = validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        detail = f" (at '{where}')" if where else ""
        raise InvalidRequest(f"Invalid JSON schema{detail}: {exc.message}", param=param) from None
    return SchemaChecker(schema, facts)


class StructuredOutput:
    """What a request's response_format asks of the backend and of the final text."""

    __slots__ = ("_budget", "_checker", "guided")

    def __init__(self, response_format: ResponseFormat | None) -> None:
        self.guided: GuidedDecoding | None = None
        self._checker: SchemaChecker | None = None
        self._budget = OUTPUT_CHECK_BUDGET
        if response_format is None or isinstance(response_format, TextFormat):
            return
        if isinstance(response_format, JsonObjectFormat):
            self.guided = GuidedDecoding("json_object")
            return
        assert isinstance(response_format, JsonSchemaFormat)
        schema = response_format.json_schema.schema
        if schema is None:
            raise InvalidRequest("response_format.json_schema needs a schema.", param=SCHEMA_PARAM)
        checker = check_schema(schema, SCHEMA_PARAM)
        self.guided = GuidedDecoding("json_schema", schema)
        if response_format.json_schema.strict:
            self._checker = checker

    @classmethod
    async def checked(cls, response_format: ResponseFormat | None) -> StructuredOutput:
        """As the constructor, with a JSON schema checked in a schema-check thread."""
        if isinstance(response_format, JsonSchemaFormat):
            return await off_loop(cls, response_format)
        return cls(response_format)

    @property
    def checks_output(self) -> bool:
        return self._checker is not None

    def check_output(self, text: str) -> None:
        """Raise StructuredOutputViolation when a strict request's output is not valid, or
        cannot be shown valid within the bounds."""
        if self._checker is None:
            return
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise StructuredOutputViolation(f"The model's output is not valid JSON: {exc}") from None
        except RecursionError:
            raise StructuredOutputViolation("The model's output nests too deeply to be checked.") from None
        started = time.monotonic()
        try:
            error = self._checker.first_error(value, self._budget)
        except CheckAborted as exc:
            raise StructuredOutputViolation(
                f"The model's output could not be checked against the schema: {exc} (the gateway allows "
                f"{OUTPUT_CHECK_BUDGET:g} s per request and {PATTERN_TIMEOUT * 1000:.0f} ms per regex match)."
            ) from None
        finally:
            self._budget = max(0.0, self._budget - (time.monotonic() - started))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise StructuredOutputViolation(f"The model's output does not match the schema at {where}: {error.message}")

    async def check_output_async(self, text: str) -> None:
        """check_output in a schema-check thread (its cost depends on the schema, not only
        on the size of the text)."""
        if self._checker is not None:
            await off_loop(self.check_output, text)
