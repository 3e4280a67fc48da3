"""Tool calling for chat completions: what `tools` and `tool_choice` ask of the template, the
backend (guided decoding for `required` and a named tool) and the parsing of the output."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gateway.chat.tools import FORMATS, REQUIRED_FORMAT, CallFormat, CallParser, ToolCallOverflow, named_format
from gateway.errors import InvalidRequest
from gateway.generation import Delta, GuidedDecoding
from gateway.schema_check import off_loop
from gateway.schema_limits import MAX_TOOL_SCHEMA_NODES, too_complex
from gateway.structured import check_schema
from schemas.requests import ChatCompletionRequest, NamedToolChoice

_ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class ToolPlan:
    """How one request uses tools. `fmt` is None when the output is not parsed for calls."""

    template_tools: list[dict[str, Any]] | None = None
    fmt: CallFormat | None = None
    guided: GuidedDecoding | None = None
    max_calls: int | None = None
    max_bytes: int = 131072
    reasoning_calls: bool = False  # the reasoning format reads the calls (gpt-oss harmony)

    schemas: dict[str, Any] = dataclasses.field(default_factory=dict)  # parameters schema by tool name

    def parser(self) -> CallParser | None:
        return None if self.fmt is None else self.fmt.parser(self.max_bytes, self.max_calls, self.schemas)

    def stage(self) -> ToolCallStage | None:
        """A choice's tool-call stage, or None when its output is not parsed for calls."""
        parser = self.parser()
        return None if parser is None else ToolCallStage(parser)


def plan_tools(
    body: ChatCompletionRequest, parser_name: str | None, max_bytes: int, reasoning_calls: bool = False
) -> ToolPlan:
    """Check `tools` and `tool_choice` and decide how the request is served. `reasoning_calls`:
    the model's reasoning format carries its calls, so `auto` needs no tool-call parser."""
    tools = body.tools or []
    choice = body.tool_choice
    if choice is not None and not tools and choice != "none":
        raise InvalidRequest("tool_choice needs tools.", param="tool_choice")
    if not tools:
        return ToolPlan()
    names = [tool.function.name for tool in tools]
    if len(set(names)) != len(names):
        raise InvalidRequest("Tool names must be unique.", param="tools")
    schemas = {}
    nodes = 0
    for index, tool in enumerate(tools):
        parameters = tool.function.parameters or _ANY_OBJECT
        param = f"tools[{index}].function.parameters"
        nodes += check_schema(parameters, param).nodes
        if nodes > MAX_TOOL_SCHEMA_NODES:
            raise too_complex(
                f"The tools' parameter schemas have more than {MAX_TOOL_SCHEMA_NODES:,} values in all.", param
            )
        schemas[tool.function.name] = parameters
    template_tools = [{"type": "function", "function": function_dict(tool.function)} for tool in tools]
    single = body.parallel_tool_calls is False
    plan = ToolPlan(
        template_tools=template_tools, max_calls=1 if single else None, max_bytes=max_bytes, schemas=schemas
    )
    if choice == "none":
        return plan
    if (choice == "required" or isinstance(choice, NamedToolChoice)) and body.response_format is not None:
        raise InvalidRequest("response_format cannot be combined with a forced tool_choice.", param="response_format")
    if choice == "required":
        schema = _any_call_schema(schemas, single)
        guided = GuidedDecoding("json_schema", schema, param="tool_choice")
        return dataclasses.replace(plan, fmt=REQUIRED_FORMAT, guided=guided)
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        if name not in schemas:
            raise InvalidRequest(f"tool_choice names '{name}', which is not among the tools.", param="tool_choice")
        guided = GuidedDecoding("json_schema", schemas[name], param="tool_choice")
        return dataclasses.replace(plan, fmt=named_format(name), guided=guided)
    if reasoning_calls:
        return dataclasses.replace(plan, reasoning_calls=True)
    if parser_name is None:
        raise InvalidRequest(
            "tool_choice 'auto' needs a tool-call parser for this model; start the gateway with "
            f"--tool-call-parser ({', '.join(FORMATS)}), or use tool_choice 'required' or a named tool.",
            param="tool_choice",
        )
    return dataclasses.replace(plan, fmt=FORMATS[parser_name])


async def plan_tools_off_loop(
    body: ChatCompletionRequest, parser_name: str | None, max_bytes: int, reasoning_calls: bool = False
) -> ToolPlan:
    """plan_tools, in a schema-check thread when there are tool schemas to check."""
    if not body.tools:
        return plan_tools(body, parser_name, max_bytes, reasoning_calls)
    return await off_loop(plan_tools, body, parser_name, max_bytes, reasoning_calls)


def function_dict(function: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": function.name, "parameters": function.parameters or _ANY_OBJECT}
    if function.description is not None:
        entry["description"] = function.description
    return entry


def _any_call_schema(schemas: dict[str, dict[str, Any]], single: bool) -> dict[str, Any]:
    """JSON the model must write for `required`: calls of any of the tools (never just the first)."""
    call = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [name]}, "parameters": parameters},
                "required": ["name", "parameters"],
            }
            for name, parameters in schemas.items()
        ]
    }
    schema: dict[str, Any] = {"type": "array", "items": call, "minItems": 1}
    if single:
        schema["maxItems"] = 1
    return schema


class ToolCallStage:
    """The pipeline stage that turns a choice's text into content and tool calls as it comes.
    A call that outgrows the parse limit ends the choice with finish_reason "length"; a choice
    that made calls and stopped ends with "tool_calls"."""

    def __init__(self, parser: CallParser) -> None:
        self._parser = parser

    def feed(self, delta: Delta) -> Delta | None:
        try:
            parsed = self._parser.feed(delta.text)
            if delta.finish_reason is not None:
                last = self._parser.finish()
                parsed.content += last.content
                parsed.calls += last.calls
        except ToolCallOverflow:
            return cut_at_the_parse_limit(delta)
        finish_reason = finish_with_calls(delta.finish_reason, bool(self._parser.calls))
        calls = [*(delta.tool_calls or ()), *parsed.calls]  # an earlier stage's calls stay
        return dataclasses.replace(delta, text=parsed.content, finish_reason=finish_reason, tool_calls=calls or None)


def finish_with_calls(finish_reason: str | None, made_calls: bool) -> str | None:
    """A choice that made calls and stopped ends with "tool_calls" (OpenAI's reason)."""
    return "tool_calls" if finish_reason == "stop" and made_calls else finish_reason


def cut_at_the_parse_limit(delta: Delta) -> Delta:
    """A call that outgrew the parse limit ends the choice, as the token limit would."""
    return dataclasses.replace(delta, text="", finish_reason="length", tool_calls=None)
