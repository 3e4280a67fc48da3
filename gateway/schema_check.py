"""Checking values against a client's JSON schema in bounded time, off the event loop.

The validator is jsonschema's, extended so that every keyword first checks the time left
(PATTERN_TIMEOUT per regex match, a whole-check budget given by the caller), so that
`pattern`, `patternProperties` and `additionalProperties` match with the `regex` engine and
its timeout instead of the stdlib `re`, which backtracks without bound ("^(a+)+$" against
"aaaa...!" takes minutes), and so that `uniqueItems` hashes instead of comparing pairs. It
resolves `$ref` only within the schema: its registry fetches nothing. Checks run in
SCHEMA_THREADS worker threads of their own, so a slow one holds neither the event loop nor
the default executor (chat templates render there).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import regex
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend, validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from gateway.schema_limits import PatternRefused, SchemaFacts, compile_pattern

PATTERN_TIMEOUT = 0.05  # seconds for one regex match; legitimate patterns take microseconds
SCHEMA_THREADS = 2  # checks hold the GIL most of the time: more threads would not add speed

T = TypeVar("T")
Keyword = Callable[[Any, Any, Any, Any], Iterator[ValidationError] | None]

_POOL = ThreadPoolExecutor(max_workers=SCHEMA_THREADS, thread_name_prefix="schema-check")
_NO_RETRIEVAL: Registry[Any] = Registry()  # resolving a URI outside the schema raises Unresolvable


class CheckAborted(Exception):
    """A check that could not finish within its bounds."""


@dataclass(frozen=True)
class _Check:
    deadline: float
    patterns: Mapping[str, regex.Pattern[str]]


_CURRENT: ContextVar[_Check | None] = ContextVar("schema_check", default=None)


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a schema-check thread."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(function, *args))


def pattern_matches(pattern: regex.Pattern[str], text: str, timeout: float = PATTERN_TIMEOUT) -> bool:
    """Whether `pattern` matches somewhere in `text` (JSON Schema's semantics); CheckAborted
    past `timeout` seconds."""
    try:
        return pattern.search(text, timeout=timeout) is not None
    except TimeoutError:
        raise CheckAborted(
            f"matching the pattern {pattern.pattern!r} took longer than {timeout * 1000:.0f} ms"
        ) from None


class SchemaChecker:
    """A client's schema, checked already, ready to judge values in bounded time."""

    __slots__ = ("_patterns", "_validator", "nodes")

    def __init__(self, schema: dict[str, Any], facts: SchemaFacts) -> None:
        self._validator = _bounded(validator_for(schema))(schema, registry=_NO_RETRIEVAL)
        self._patterns = facts.patterns
        self.nodes = facts.nodes  # the schema's size, for bounds over several schemas

    def first_error(self, value: Any, budget: float) -> ValidationError | None:
        """The most relevant way `value` breaks the schema, or None; CheckAborted when that
        takes more than `budget` seconds (or a regex match more than PATTERN_TIMEOUT)."""
        token = _CURRENT.set(_Check(time.monotonic() + budget, self._patterns))
        try:
            error: ValidationError | None = best_match(self._validator.iter_errors(value))
            return error
        except Unresolvable as exc:  # schema_limits refuses these; this is a second line
            raise CheckAborted(f"a $ref could not be resolved ({exc})") from None
        except RecursionError:
            raise CheckAborted("the value nests too deeply to be checked") from None
        finally:
            _CURRENT.reset(token)


def _time_left() -> float:
    check = _CURRENT.get()
    if check is None:
        return math.inf
    left = check.deadline - time.monotonic()
    if left <= 0:
        raise CheckAborted("it ran out of time")
    return left


def _search(pattern: str, text: str) -> bool:
    check = _CURRENT.get()
    compiled = check.patterns.get(pattern) if check is not None else None
    if compiled is None:  # a pattern schema_limits did not see (it sees every one it knows of)
        try:
            compiled, _ = compile_pattern(pattern)
        except PatternRefused as exc:
            raise CheckAborted(f"the pattern {pattern!r} {exc}") from None
    return pattern_matches(compiled, text, min(PATTERN_TIMEOUT, _time_left()))


def _timed(keyword: Keyword) -> Keyword:
    def timed(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError] | None:
        _time_left()
        return keyword(validator, value, instance, schema)

    return timed


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [key for key in instance if key not in properties and not any(_search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(f"{names} {verb} not match any of the regexes: {', '.join(map(repr, patterns))}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # jsonschema compares unsortable items pairwise: 1,000 objects take 2 s, 10,000 minutes
    if unique and validator.is_type(instance, "array") and len({_frozen(item) for item in instance}) < len(instance):
        yield ValidationError(f"{instance!r} has non-unique elements")


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal where JSON Schema calls values equal
    (1 and 1.0 are, true and 1 are not)."""
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, list):
        return (_ARRAY, tuple(_frozen(item) for item in value))
    if isinstance(value, dict):
        return (_OBJECT, frozenset((key, _frozen(item)) for key, item in value.items()))
    return value  # strings, numbers, null: already hashable with JSON's equality


_BOOL, _ARRAY, _OBJECT = object(), object(), object()  # tags no JSON value can equal

_BOUNDED_KEYWORDS: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


@functools.cache
def _bounded(validator_class: Any) -> Any:
    """`validator_class` with every keyword timed, and the regex ones and uniqueItems bounded."""
    keywords = {name: _BOUNDED_KEYWORDS.get(name, keyword) for name, keyword in validator_class.VALIDATORS.items()}
    timed = {name: _timed(keyword) for name, keyword in keywords.items()}
    return extend(validator_class, timed)  # type: ignore[no-untyped-call]  # untyped in types-jsonschema
