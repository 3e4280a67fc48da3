"""Bounds on clients' JSON schemas (gateway.schema_limits), the time-bounded check of values
against them (gateway.schema_check), and the request-body bounds (gateway.http.body)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema._utils
import pytest
import regex

from gateway.errors import InvalidRequest
from gateway.http.body import MAX_JSON_DEPTH, check_utf8, nesting, nests_too_deep
from gateway.schema_check import PATTERN_TIMEOUT, CheckAborted, SchemaChecker, pattern_matches
from gateway.schema_limits import (
    MAX_PATTERN_COST,
    MAX_SCHEMA_CHARS,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    MAX_TOOL_SCHEMA_NODES,
    check_schema_limits,
    pattern_cost,
)
from gateway.structured import OUTPUT_CHECK_BUDGET, StructuredOutput, StructuredOutputViolation
from schemas.requests import JsonSchemaFormat, JsonSchemaSpec

PARAM = "tools[2].function.parameters"
TREE = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}


def refused(schema: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_schema_limits(schema, PARAM)
    assert caught.value.param == PARAM
    return caught.value


def nested_arrays(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def strict(schema: dict[str, Any]) -> StructuredOutput:
    return StructuredOutput(JsonSchemaFormat(JsonSchemaSpec("n", schema, strict=True)))


# --- size ---------------------------------------------------------------------------------


def test_depth_bound() -> None:
    check_schema_limits({"enum": nested_arrays(MAX_SCHEMA_DEPTH - 1)}, PARAM)
    error = refused({"enum": nested_arrays(MAX_SCHEMA_DEPTH)})
    assert error.code == "schema_too_complex" and str(MAX_SCHEMA_DEPTH) in error.message
    refused(nested_arrays(100_000))  # iterative: no RecursionError however deep


def test_node_bound() -> None:
    # the root object, the list, and its items
    check_schema_limits({"enum": list(range(MAX_SCHEMA_NODES - 2))}, PARAM)
    error = refused({"enum": list(range(MAX_SCHEMA_NODES - 1))})
    assert error.code == "schema_too_complex" and f"{MAX_SCHEMA_NODES:,}" in error.message


def test_string_bound_counts_keys_and_values() -> None:
    check_schema_limits({"description": "x" * (MAX_SCHEMA_CHARS - len("description"))}, PARAM)
    assert refused({"description": "x" * MAX_SCHEMA_CHARS}).code == "schema_too_complex"
    assert refused({"k" * (MAX_SCHEMA_CHARS + 1): 1}).code == "schema_too_complex"


# --- $ref ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["#", "#/$defs/a", "#/$defs/a~1b", "#/$defs/with%20space", "#/allOf/0", "#/definitions/a"],
)
def test_local_pointers_are_allowed(ref: str) -> None:
    defs = {"a": {"type": "string"}, "a/b": {}, "with space": {}}
    schema = {"$defs": defs, "definitions": {"a": {}}, "allOf": [{}], "properties": {"x": {"$ref": ref}}}
    check_schema_limits(schema, PARAM)


@pytest.mark.parametrize(
    "ref",
    [
        "http://127.0.0.1:9/schema.json",
        "https://json-schema.org/draft/2020-12/schema",
        "file:///etc/passwd",
        "other.json",
        "other.json#/a",
        "#anchor",
        "urn:example:thing",
    ],
)
def test_other_refs_are_refused(ref: str) -> None:
    error = refused({"properties": {"x": {"$ref": ref}}})
    assert error.code == "invalid_schema" and ref in error.message and "/properties/x/$ref" in error.message


@pytest.mark.parametrize("ref", ["#/$defs/nope", "#/allOf/3", "#/allOf/-1", "#/type", "#/required/0"])
def test_refs_that_do_not_resolve_to_a_schema_are_refused(ref: str) -> None:
    error = refused(
        {"type": "object", "required": ["a"], "allOf": [{}], "$defs": {}, "properties": {"a": {"$ref": ref}}}
    )
    assert error.code == "invalid_schema"


def test_base_changing_keywords() -> None:
    check_schema_limits({"$id": "https://example.com/root.json", "properties": {"a": {"$ref": "#"}}}, PARAM)
    assert "$id" in refused({"properties": {"a": {"$id": "http://127.0.0.1:9/", "$ref": "#/x"}}}).message
    draft4 = "http://json-schema.org/draft-04/schema#"
    check_schema_limits({"$schema": draft4, "properties": {"id": {"type": "string"}}}, PARAM)  # a property
    refused({"$schema": draft4, "properties": {"a": {"id": "http://127.0.0.1:9/", "type": "string"}}})
    assert "$dynamicRef" in refused({"$dynamicRef": "#meta"}).message
    assert "$recursiveRef" in refused({"items": {"$recursiveRef": "#"}}).message


# --- cycles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
        {"anyOf": [{"type": "string"}, {"$ref": "#"}]},
        {"oneOf": [{"not": {"$ref": "#"}}]},
        {"if": {"$ref": "#"}},
        {"if": {}, "then": {"$ref": "#"}},
        {"if": {}, "else": {"allOf": [{"$ref": "#"}]}},
        {"dependentSchemas": {"a": {"$ref": "#"}}},
        {"$defs": {"loop": {"$ref": "#/$defs/loop"}}},  # never used, still refused
        {"properties": {"a": {"$ref": "#/properties/a"}}},  # consumes once, then loops in place
    ],
)
def test_cycles_that_consume_nothing_are_refused(schema: dict[str, Any]) -> None:
    error = refused(schema)
    assert error.code == "invalid_schema" and "refers back to itself" in error.message


@pytest.mark.parametrize(
    "schema",
    [
        TREE,
        {"type": "object", "additionalProperties": {"$ref": "#"}},
        {"patternProperties": {"^x": {"$ref": "#"}}},
        {"prefixItems": [{"$ref": "#"}], "contains": {"$ref": "#"}},
        {"propertyNames": {"$ref": "#/$defs/name"}, "$defs": {"name": {"anyOf": [{"$ref": "#"}]}}},
        {"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}},
        {"allOf": [{"$ref": "#/$defs/s"}, {"$ref": "#/$defs/s"}], "$defs": {"s": {"type": "string"}}},  # a DAG
    ],
)
def test_recursion_that_consumes_input_is_allowed(schema: dict[str, Any]) -> None:
    check_schema_limits(schema, PARAM)


def test_recursive_schemas_still_check_values() -> None:
    tree = strict(TREE)
    tree.check_output(json.dumps({"children": [{"children": [{"children": []}]}]}))
    with pytest.raises(StructuredOutputViolation, match="children/0/children/0"):
        tree.check_output(json.dumps({"children": [{"children": [5]}]}))


# --- patterns -----------------------------------------------------------------------------


def test_patterns_that_do_not_compile_are_refused() -> None:
    assert refused({"type": "string", "pattern": "(("}).code == "invalid_schema"
    assert "(?P<" in refused({"patternProperties": {"(?P<": {}}}).message
    assert "too deeply" in refused({"pattern": "(" * 5000 + ")" * 5000}).message  # no RecursionError
    compiled = check_schema_limits({"pattern": "^[a-z]+$", "patternProperties": {"^x-": {}}}, PARAM).patterns
    assert set(compiled) == {"^[a-z]+$", "^x-"}


def test_pattern_cost_expands_counted_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pattern_cost("ab") == 2
    assert pattern_cost("(?:ab){3}") == 7
    assert pattern_cost("[a-z]{1,64}") == 2  # an open count is not expanded
    assert pattern_cost("(a{1000}){1000}") > MAX_PATTERN_COST  # a second and 300 MB to compile
    assert refused({"pattern": "(a{1000}){1000}"}).code == "schema_too_complex"
    compiled: list[str] = []
    compile_for_real = regex.compile

    def counted(pattern: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(pattern)
        return compile_for_real(pattern, *args, **kwargs)

    monkeypatch.setattr(regex, "compile", counted)
    refused({"pattern": "((((a{1000}){1000}){1000}){1000})"})
    assert compiled == []  # refused before the compiler saw it
    check_schema_limits({"pattern": "^a{3}$"}, PARAM)
    assert compiled == ["^a{3}$"]  # what the counter would have seen


def test_pattern_cost_is_bounded_over_the_whole_schema() -> None:
    single = "(?:a{100}){90}"  # about 9,100 items
    check_schema_limits({"pattern": single}, PARAM)
    error = refused({"properties": {"a": {"pattern": single}, "b": {"pattern": single + "b"}}})
    assert error.code == "schema_too_complex" and "in all" in error.message


def test_the_combination_jsonschema_would_match_with_re_is_refused() -> None:
    assert refused({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}).code == "invalid_schema"


@pytest.mark.timeout(30)  # a deadline for a hang, not a measurement
def test_bounded_pattern_check() -> None:
    text = "a" * 40 + "!"
    # catastrophic for the stdlib `re` (2**40 steps); the `regex` engine answers at once
    assert not pattern_matches(regex.compile("^(a+)+$"), text)
    assert pattern_matches(regex.compile("a+!"), text)
    with pytest.raises(CheckAborted, match="took longer than"):
        pattern_matches(regex.compile("^(a|a)*$"), text)  # catastrophic for `regex` too


# --- checking values ----------------------------------------------------------------------


@pytest.mark.timeout(30)  # a deadline for a hang, not a measurement
def test_strict_output_check_is_bounded() -> None:
    catastrophic = strict({"type": "object", "patternProperties": {"^(a|a)*$": {}}, "additionalProperties": False})
    with pytest.raises(StructuredOutputViolation, match="could not be checked"):
        catastrophic.check_output(json.dumps({"a" * 40 + "!": 1}))
    # exponential through $ref/anyOf, yet acyclic and within the bounds: the budget ends it
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(30)}
    defs["d30"] = {"type": "integer"}
    laughs = strict({"$defs": defs, "$ref": "#/$defs/d0"})
    with pytest.raises(StructuredOutputViolation, match="ran out of time"):
        laughs.check_output('"text"')
    with pytest.raises(StructuredOutputViolation, match="ran out of time"):  # the budget is per request
        laughs.check_output('"text"')
    with pytest.raises(StructuredOutputViolation, match="nests too deeply"):
        strict({"type": "array", "items": {"$ref": "#"}}).check_output("[" * 100_000 + "]" * 100_000)


def test_unique_items_hashes_with_json_equality(monkeypatch: pytest.MonkeyPatch) -> None:
    unique = strict({"type": "array", "uniqueItems": True})
    for items in ([1, True], [0, False], ["1", 1], [[1, 2], [2, 1]], [{"a": [True]}, {"a": [1]}], [{}, []]):
        unique.check_output(json.dumps(items))
    for items in ([1, 1.0], [None, None], [{"a": 1, "b": 2}, {"b": 2, "a": 1.0}]):
        with pytest.raises(StructuredOutputViolation, match="non-unique"):
            unique.check_output(json.dumps(items))
    # jsonschema's own check compares unsortable items pairwise (n*(n-1)/2 calls of its `equal`)
    comparisons = 0
    pairwise_equal = jsonschema._utils.equal

    def counted(one: Any, two: Any) -> bool:
        nonlocal comparisons
        comparisons += 1
        return bool(pairwise_equal(one, two))

    monkeypatch.setattr(jsonschema._utils, "equal", counted)
    objects = [{"n": index} for index in range(2_000)]
    unique.check_output(json.dumps(objects))
    with pytest.raises(StructuredOutputViolation, match="non-unique"):
        unique.check_output(json.dumps([*objects, {"n": 0}]))
    assert comparisons < len(objects)


def test_the_checker_fetches_nothing(schema_server: tuple[str, list[str]]) -> None:
    url, requested = schema_server
    with pytest.raises(InvalidRequest):
        strict({"$ref": url})
    # past the bounds check (a second line of defence): the registry retrieves nothing
    remote = {"$ref": url}
    checker = SchemaChecker(remote, check_schema_limits({}, PARAM))
    with pytest.raises(CheckAborted, match="could not be resolved"):
        checker.first_error("text", 1.0)
    assert requested == []


# --- request bodies -----------------------------------------------------------------------


def test_body_nesting_counts_brackets_outside_strings() -> None:
    assert nesting(b'{"a": [[1], {"b": []}]}') == 4
    assert nesting(b'{"a": "[[[[{{{{", "b": "\\"[[[", "c": "\\\\", "d": [[]]}') == 3
    assert nesting(b"1") == 0
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert nesting(deep) == MAX_JSON_DEPTH + 1 and nests_too_deep(deep)
    assert not nests_too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert not nests_too_deep(b'{"a": "' + b"[" * 10_000 + b'"}')


def test_body_nesting_matches_the_parsed_depth() -> None:
    tricky = ["[", "{", '"', "\\", '\\"', '"[[', '\\\\"{', "}]", 1, None, True]
    generator = random.Random(7)

    def document(level: int) -> Any:
        roll = generator.random()
        if level > 8 or roll < 0.3:
            return generator.choice(tricky)
        if roll < 0.65:
            return [document(level + 1) for _ in range(generator.randint(0, 3))]
        return {f"{generator.choice(tricky)}{index}": document(level + 1) for index in range(generator.randint(0, 3))}

    def depth(value: Any) -> int:
        deepest, pending = 0, [(value, 1)]
        while pending:
            item, level = pending.pop()
            if isinstance(item, dict | list):
                deepest = max(deepest, level)
                pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
        return deepest

    for _ in range(2000):
        value = document(0)
        assert nesting(json.dumps(value).encode()) == depth(value)


def test_body_utf8_check() -> None:
    check_utf8('{"a": "é ✓ 𝄞"}'.encode())
    for bad in (b'{"a": "\xff"}', b'{"\xc3": 1}', b'{"a": "\xed\xa0\x80"}'):  # the last: a surrogate
        with pytest.raises(InvalidRequest) as caught:
            check_utf8(bad)
        assert caught.value.code == "invalid_json"


def test_the_readme_states_each_bound() -> None:
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    for phrase in (
        f"at most {MAX_JSON_DEPTH} levels of arrays and objects",
        f"nests at most {MAX_SCHEMA_DEPTH} levels",
        f"at most {MAX_SCHEMA_NODES:,} values and {MAX_SCHEMA_CHARS:,} characters",
        f"at most {MAX_TOOL_SCHEMA_NODES:,} values together",
        f"at most {MAX_PATTERN_COST:,} regex items",
        f"{OUTPUT_CHECK_BUDGET:g} s per request and {PATTERN_TIMEOUT * 1000:.0f} ms per regex match",
    ):
        assert phrase in readme
