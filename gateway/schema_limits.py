"""Bounds on a JSON schema sent by a client, checked before jsonschema or a backend sees it.

jsonschema recurses over a schema, follows `$ref` wherever it points (remote ones are
fetched) and hands `pattern`s to a backtracking regex engine, so a hostile schema can exhaust
the stack, make the gateway fetch URLs, or hold a CPU for minutes. Everything here walks the
schema iteratively and refuses, with a 400 naming the field, what the bounds do not allow:

* size: objects and arrays nest at most MAX_SCHEMA_DEPTH levels, the schema holds at most
  MAX_SCHEMA_NODES values and MAX_SCHEMA_CHARS characters of strings (keys included);
* `$ref`: only local JSON pointers ("#", "#/..."), each resolving to a schema; no `$id` below
  the root (it would change what "#" means), no `$dynamicRef`/`$recursiveRef`;
* cycles: a schema that reaches itself again through `$ref`, allOf/anyOf/oneOf, not,
  if/then/else or dependentSchemas without descending into a property or an item (checking a
  value against it never ends); recursion through properties, items... is fine;
* patterns: each `pattern` and `patternProperties` key must compile, and all of them together
  must stay within MAX_PATTERN_COST once counted repeats are expanded (the `regex` engine
  expands `(a{1000}){1000}` at compile time: a second and 300 MB).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import regex
from jsonschema.validators import Draft3Validator, Draft4Validator, validator_for

from gateway.errors import InvalidRequest

# A schema 10 levels of objects deep (OpenAI's limit for structured outputs) is about 20-30
# levels of JSON; 32 also keeps jsonschema's recursion far from Python's limit.
MAX_SCHEMA_DEPTH = 32
# Real tool and response schemas have tens to hundreds of values. jsonschema's own check of a
# schema costs 0.13-0.8 ms per value (measured), so 2,000 values hold a schema-check thread for
# 0.3-1.6 s at worst.
MAX_SCHEMA_NODES = 2_000
# All tools' parameter schemas of one request together: 128 schemas at the bound above would
# be minutes of CPU; 8,000 values are ample for a large agent's toolset (3.5 s at worst).
MAX_TOOL_SCHEMA_NODES = 8_000
# Descriptions and enums included; a generous schema is a few KiB.
MAX_SCHEMA_CHARS = 65_536
# Regex items after expanding counted repeats, all patterns of a schema together; compiling
# costs about 1 us and 270 bytes per item.
MAX_PATTERN_COST = 10_000

TOO_COMPLEX = "schema_too_complex"
INVALID = "invalid_schema"

# Keywords whose schemas apply to the same value as the schema holding them: a cycle through
# these alone never ends.
_IN_PLACE_ONE = frozenset({"not", "if", "then", "else"})
_IN_PLACE_LIST = frozenset({"allOf", "anyOf", "oneOf"})
_IN_PLACE_MAP = frozenset({"dependentSchemas", "dependencies"})
# Keywords whose schemas apply to a part of the value (a property, an item, a key).
_CONSUMING_ONE = frozenset(
    {
        "additionalProperties",
        "additionalItems",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
        "items",
    }
)
_CONSUMING_LIST = frozenset({"prefixItems", "items"})
_CONSUMING_MAP = frozenset({"properties", "patternProperties"})
# Maps of schemas applied only through $ref.
_HOLDERS = frozenset({"$defs", "definitions"})
_UNSUPPORTED = ("$dynamicRef", "$recursiveRef")
_ONE = _IN_PLACE_ONE | _CONSUMING_ONE
_LIST = _IN_PLACE_LIST | _CONSUMING_LIST
_MAP = _IN_PLACE_MAP | _CONSUMING_MAP | _HOLDERS
_IN_PLACE = _IN_PLACE_ONE | _IN_PLACE_LIST | _IN_PLACE_MAP

# The stdlib's regex parser (the syntax jsonschema already requires of patterns) gives the
# structure needed to estimate the expansion; it is private, hence imported by name.
_sre_parser: Any = importlib.import_module("re._parser")
_REPEATS = {getattr(_sre_parser, name, None) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")}


def too_complex(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code=TOO_COMPLEX)


def invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code=INVALID)


@dataclass(frozen=True)
class SchemaFacts:
    """What the bounds check learnt of a schema: its compiled patterns and its size."""

    patterns: dict[str, regex.Pattern[str]]
    nodes: int


def check_schema_limits(schema: Any, param: str) -> SchemaFacts:
    """Refuse `schema` (a 400 naming `param`) past the bounds."""
    nodes = check_size(schema, param)
    return SchemaFacts(_SchemaWalk(schema, param).run(), nodes)


def check_size(value: Any, param: str) -> int:
    """Depth, number of values and characters of strings, in one iterative pass; the number
    of values."""
    nodes = chars = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise too_complex(f"The schema has more than {MAX_SCHEMA_NODES:,} values; that is the limit.", param)
        if isinstance(item, dict | list):
            if depth > MAX_SCHEMA_DEPTH:
                raise too_complex(
                    f"The schema nests objects and arrays more than {MAX_SCHEMA_DEPTH} levels deep.", param
                )
            if isinstance(item, dict):
                chars += sum(len(key) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            chars += len(item)
        if chars > MAX_SCHEMA_CHARS:
            raise too_complex(f"The schema's strings add up to more than {MAX_SCHEMA_CHARS:,} characters.", param)
    return nodes


def pattern_cost(pattern: str) -> int:
    """Regex items in `pattern` once counted repeats are expanded (`(?:ab){3}` costs 7: the
    repeat, and its two literals three times); a re.error when it does not parse. Counting
    stops once past MAX_PATTERN_COST."""
    cost = 0
    stack: list[tuple[Any, int]] = [(_sre_parser.parse(pattern), 1)]
    while stack and cost <= MAX_PATTERN_COST:
        subpattern, weight = stack.pop()
        for op, argument in subpattern:
            cost += weight
            times = max(argument[0], 1) if op in _REPEATS else 1
            stack.extend((part, weight * times) for part in _subpatterns(argument))
    return cost


def _subpatterns(argument: Any) -> list[Any]:
    """The nested subpatterns of one parsed item (a group, a branch, a repeat's body...)."""
    found = []
    pending = [argument]
    while pending:
        item = pending.pop()
        if isinstance(item, _sre_parser.SubPattern):
            found.append(item)
        elif isinstance(item, tuple | list):
            pending.extend(item)
    return found


class PatternRefused(ValueError):
    """A pattern that does not compile, or costs more than the budget left."""

    def __init__(self, reason: str, *, too_complex: bool = False) -> None:
        super().__init__(reason)
        self.too_complex = too_complex


def compile_pattern(pattern: str, budget: int = MAX_PATTERN_COST) -> tuple[regex.Pattern[str], int]:
    """`pattern` compiled with the engine the strict output check uses, and its cost.

    Not cached by `regex`: its cache would keep up to 500 patterns of a few MB each."""
    try:
        cost = pattern_cost(pattern)
    except re.error as exc:
        raise PatternRefused(f"does not compile: {exc}") from None
    except RecursionError:  # both parsers recurse, into groups nested about 1,000 deep
        raise PatternRefused("nests its groups too deeply") from None
    if cost > budget:
        raise PatternRefused("is too complex", too_complex=True)
    try:
        return regex.compile(pattern, cache_pattern=False), cost
    except regex.error as exc:
        raise PatternRefused(f"does not compile: {exc}") from None
    except RecursionError:
        raise PatternRefused("nests its groups too deeply") from None


def _segment(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


@dataclass
class _SchemaWalk:
    """One pass over the schema positions of a document: refs, patterns, in-place edges."""

    root: Any
    param: str
    pointers: dict[int, str] = field(default_factory=dict)  # id(schema) -> where it is
    edges: dict[int, list[int]] = field(default_factory=dict)  # in-place applications
    patterns: dict[str, regex.Pattern[str]] = field(default_factory=dict)
    pattern_budget: int = MAX_PATTERN_COST
    keywords_seen: set[str] = field(default_factory=set)
    id_keywords: tuple[str, ...] = ("$id",)

    def run(self) -> dict[str, regex.Pattern[str]]:
        if not isinstance(self.root, dict):
            return self.patterns
        # Drafts 3 and 4 call the base-changing keyword `id`; later drafts `$id`.
        legacy = validator_for(self.root) in (Draft3Validator, Draft4Validator)
        if legacy:
            self.id_keywords = ("$id", "id")
        pending: list[tuple[Any, str]] = [(self.root, "")]
        while pending:
            schema, where = pending.pop()
            if isinstance(schema, dict) and id(schema) not in self.pointers:
                self.pointers[id(schema)] = where
                pending.extend(self._visit(schema, where))
        if "unevaluatedProperties" in self.keywords_seen and "patternProperties" in self.keywords_seen:
            # jsonschema matches these patterns with the stdlib `re`, which has no time bound.
            raise invalid("patternProperties cannot be combined with unevaluatedProperties.", self.param)
        self._refuse_cycles()
        return self.patterns

    def _visit(self, schema: dict[str, Any], where: str) -> list[tuple[Any, str]]:
        """Check one schema object; its subschemas (and $ref target) still to visit."""
        self.keywords_seen.update(schema)
        children: list[tuple[Any, str]] = []
        in_place: list[int] = []
        for keyword in _UNSUPPORTED:
            if keyword in schema:
                raise invalid(f"{keyword} is not supported (at '{where}/{keyword}').", self.param)
        if where and any(isinstance(schema.get(keyword), str) for keyword in self.id_keywords):
            raise invalid(f"$id is only allowed at the root of the schema (at '{where}').", self.param)
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target, target_where = self._resolve(ref, f"{where}/$ref")
            children.append((target, target_where))
            if isinstance(target, dict):
                in_place.append(id(target))
        if isinstance(schema.get("pattern"), str):
            self._compile(schema["pattern"], f"{where}/pattern")
        for keyword, value in schema.items():
            place = f"{where}/{_segment(keyword)}"
            subschemas = self._subschemas(keyword, value, place)
            children.extend(subschemas)
            if keyword in _IN_PLACE:
                in_place.extend(id(child) for child, _ in subschemas if isinstance(child, dict))
            if keyword == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    self._compile(pattern, place)
        self.edges[id(schema)] = in_place
        return children

    @staticmethod
    def _subschemas(keyword: str, value: Any, place: str) -> list[tuple[Any, str]]:
        if keyword in _ONE and isinstance(value, dict):
            return [(value, place)]
        if keyword in _LIST and isinstance(value, list):
            return [(item, f"{place}/{index}") for index, item in enumerate(value)]
        if keyword in _MAP and isinstance(value, dict):
            return [(item, f"{place}/{_segment(name)}") for name, item in value.items()]
        return []

    def _resolve(self, ref: str, where: str) -> tuple[Any, str]:
        """The schema a local `$ref` points to, and where it is."""
        if not ref.startswith("#"):
            raise invalid(
                f"The $ref '{ref}' at '{where}' is not local; only JSON pointers into this schema "
                "('#' or '#/...') are allowed, and the gateway fetches nothing.",
                self.param,
            )
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise invalid(f"The $ref '{ref}' at '{where}' names an anchor; only JSON pointers are allowed.", self.param)
        target = self.root
        for raw in pointer.split("/")[1:]:
            segment = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and segment in target:
                target = target[segment]
            elif isinstance(target, list) and segment.isascii() and segment.isdigit() and int(segment) < len(target):
                target = target[int(segment)]
            else:
                raise invalid(f"The $ref '{ref}' at '{where}' does not resolve within the schema.", self.param)
        if not isinstance(target, dict | bool):
            raise invalid(f"The $ref '{ref}' at '{where}' does not point to a schema.", self.param)
        return target, pointer

    def _compile(self, pattern: str, where: str) -> None:
        if pattern in self.patterns:
            return
        try:
            self.patterns[pattern], cost = compile_pattern(pattern, self.pattern_budget)
        except PatternRefused as exc:
            if exc.too_complex:
                raise too_complex(
                    f"The schema's patterns, counted repeats expanded, have more than {MAX_PATTERN_COST:,} "
                    f"regex items in all (at '{where}').",
                    self.param,
                ) from None
            raise invalid(f"The pattern {pattern!r} at '{where}' {exc}.", self.param) from None
        self.pattern_budget -= cost

    def _refuse_cycles(self) -> None:
        """An iterative depth-first search of the in-place edges; a back edge is a cycle."""
        done: set[int] = set()
        for start in self.edges:
            if start in done:
                continue
            on_path = {start}
            stack = [(start, iter(self.edges[start]))]
            while stack:
                node, successors = stack[-1]
                following = next(successors, None)
                if following is None:
                    stack.pop()
                    on_path.discard(node)
                    done.add(node)
                elif following in on_path:
                    where = self.pointers[following] or "#"
                    raise invalid(
                        f"The schema at '{where}' refers back to itself through $ref, allOf/anyOf/oneOf, not, "
                        "if/then/else or dependentSchemas without descending into a property or an item, "
                        "so checking a value against it would never end.",
                        self.param,
                    )
                elif following not in done:
                    on_path.add(following)
                    stack.append((following, iter(self.edges[following])))
