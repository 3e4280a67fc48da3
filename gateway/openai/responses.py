"""The Responses API without a web framework: a second rendering of the chat pipeline.
`plan_response` maps the request (with the conversation of its previous_response_id) onto a
chat completions request and plans that with `plan_chat`; the choice's deltas go through the
same stages, and `response_object` / `ResponseEvents` render them as a response object or as
its typed events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from gateway.errors import APIError, InvalidRequest, validation_error
from gateway.generation import Delta
from gateway.openai.chat import ChatPlan, plan_chat
from gateway.openai.choices import Choice
from gateway.openai.context import GatewayState
from gateway.openai.response_input import ChatInput, chat_input, input_items, output_as_input
from gateway.openai.response_output import Event, OutputBuilder
from gateway.openai.sampling import unsupported
from gateway.response_store import StoredResponse
from gateway.response_store.base import MAX_RECORD_BYTES
from schemas.requests import (
    ChatCompletionRequest,
    FunctionDefinition,
    FunctionName,
    JsonObjectFormat,
    JsonSchemaFormat,
    JsonSchemaSpec,
    NamedToolChoice,
    ResponseFormat,
    ToolDefinition,
)
from schemas.responses import Usage
from schemas.responses_api import (
    MAX_INPUT_ITEMS,
    FunctionTool,
    FunctionToolChoice,
    IncompleteDetails,
    InputItem,
    JsonObjectTextFormat,
    JsonSchemaTextFormat,
    OutputTokensDetails,
    Response,
    ResponseCompleted,
    ResponseCreated,
    ResponseError,
    ResponseEvent,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    ResponseRequest,
    ResponseUsage,
    TextConfig,
)

_ENCODER = msgspec.json.Encoder()
_ITEMS = msgspec.json.Decoder(list[InputItem])
_RESPONSE = msgspec.json.Decoder(Response)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# `include` values that ask for nothing this gateway would have to add (it has no encrypted reasoning)
_INCLUDABLE = frozenset({"reasoning.encrypted_content"})


@dataclass(frozen=True)
class ResponsePlan:
    id: str  # resp_…
    created_at: int
    body: ResponseRequest
    tools: list[FunctionTool]
    chat: ChatPlan
    items: list[InputItem]  # what the model answers: the previous response's conversation, then this input
    store: bool  # whether it will be stored (asked for, and a store is configured)
    encoded_items: bytes  # `items` as stored (encoded once, off the event loop)

    @property
    def choice(self) -> Choice:
        return self.chat.choices[0]

    def snapshot(self, status: str = "in_progress") -> Response:
        """The response object before any output: what response.created shows."""
        body = self.body
        return Response(
            id=self.id,
            created_at=self.created_at,
            status=status,  # type: ignore[arg-type]
            instructions=body.instructions,
            max_output_tokens=body.max_output_tokens,
            model=body.model,
            parallel_tool_calls=body.parallel_tool_calls is not False,
            previous_response_id=body.previous_response_id,
            reasoning=body.reasoning,
            store=self.store,
            temperature=body.temperature,
            text=body.text or TextConfig(),
            tool_choice=body.tool_choice or "auto",
            tools=self.tools,
            top_p=body.top_p,
            user=body.user,
            metadata=body.metadata or {},
        )

    @property
    def incomplete_reason(self) -> str | None:
        """Why the ended choice is incomplete (cut at max_output_tokens, filtered), if it is."""
        return _INCOMPLETE.get(self.choice.finish_reason or "stop")

    @property
    def final_status(self) -> str:
        """The ended response's status, and its open output item's."""
        return "incomplete" if self.incomplete_reason else "completed"

    def finished(self, builder: OutputBuilder, usage: Usage | None) -> Response:
        """The whole response once the choice has ended."""
        reason = self.incomplete_reason
        response = self.snapshot(self.final_status)
        response.output = builder.items
        response.completed_at = int(time.time())
        response.incomplete_details = IncompleteDetails(reason) if reason else None  # type: ignore[arg-type]
        response.usage = response_usage(usage)
        return response

    def record(self, response: Response, owner: str) -> StoredResponse:
        return StoredResponse(self.id, owner, self.created_at, _ENCODER.encode(response), self.encoded_items)


def response_usage(usage: Usage | None) -> ResponseUsage | None:
    if usage is None:
        return None
    details = usage.completion_tokens_details
    reasoning = OutputTokensDetails(details.reasoning_tokens if details else 0)
    return ResponseUsage(
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, output_tokens_details=reasoning
    )


async def stored_items(record: StoredResponse) -> list[InputItem]:
    """The stored conversation (up to MAX_RECORD_BYTES of JSON: decoded off the event loop)."""
    return await asyncio.to_thread(_ITEMS.decode, record.items)


def _conversation_after(record: StoredResponse) -> list[InputItem]:
    """The conversation a stored response answered, then its output: what the next turn follows."""
    return _ITEMS.decode(record.items) + output_as_input(_RESPONSE.decode(record.response).output)


def check_response_request(body: ResponseRequest) -> list[FunctionTool]:
    """What this gateway does not do, refused by name; the function tools, checked."""
    if body.background:
        raise unsupported("background", "Background responses")
    if body.truncation != "disabled":
        raise unsupported("truncation", "Truncation other than 'disabled'")
    if body.max_tool_calls is not None:
        raise unsupported("max_tool_calls", "A limit on tool calls")
    if body.top_logprobs is not None:
        raise unsupported("top_logprobs", "Logprobs in the Responses API")
    for index, value in enumerate(body.include or ()):
        if value not in _INCLUDABLE:
            raise unsupported(f"include[{index}]", f"include {value!r}")
    tools = []
    for index, tool in enumerate(body.tools or ()):
        kind = tool.get("type")
        if kind != "function":
            raise unsupported(f"tools[{index}].type", f"A tool of type {kind!r} (only function tools are)")
        try:
            tools.append(msgspec.convert(tool, FunctionTool))
        except msgspec.ValidationError as exc:
            raise validation_error(exc, f"tools[{index}]") from None
    return tools


async def plan_response(
    body: ResponseRequest,
    state: GatewayState,
    triton_request_id: str,
    previous: StoredResponse | None,
    conversation_key: str | None = None,
) -> ResponsePlan:
    """Check the request and plan its generation as a chat completion; errors name this
    API's fields (`input[2].content`, `text.format.schema`, `max_output_tokens`).
    `conversation_key`: as plan_chat's `conversation`."""
    tools = check_response_request(body)
    inherited: list[InputItem] = []
    if previous is not None:
        inherited = await asyncio.to_thread(_conversation_after, previous)
    items = inherited + input_items(body.input)
    if len(items) > MAX_INPUT_ITEMS:
        raise InvalidRequest(
            f"The conversation has {len(items)} items, more than the {MAX_INPUT_ITEMS} a response may answer.",
            param="previous_response_id" if inherited else "input",
        )
    conversation = chat_input(items, body.instructions, len(inherited))
    try:
        chat = await plan_chat(_chat_request(body, tools, conversation), state, triton_request_id, conversation_key)
    except APIError as error:
        raise conversation.translated(error) from None
    store = body.store and state.responses is not None
    encoded = await asyncio.to_thread(_ENCODER.encode, items) if store else b""
    if len(encoded) > MAX_RECORD_BYTES:
        raise InvalidRequest(
            f"The conversation is larger than the {MAX_RECORD_BYTES} bytes a stored response may hold; "
            "start a new one, or send store: false.",
            param="previous_response_id" if inherited else "input",
        )
    return ResponsePlan(f"resp_{uuid.uuid4().hex}", int(time.time()), body, tools, chat, items, store, encoded)


def _chat_request(body: ResponseRequest, tools: list[FunctionTool], conversation: ChatInput) -> ChatCompletionRequest:
    template_kwargs = dict(body.chat_template_kwargs or {})
    if body.reasoning is not None and body.reasoning.effort is not None:
        template_kwargs.setdefault("reasoning_effort", body.reasoning.effort)  # gpt-oss's template reads it
    tool_choice = body.tool_choice
    return ChatCompletionRequest(
        model=body.model,
        messages=conversation.messages,
        max_completion_tokens=body.max_output_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        seed=body.seed,
        stream=body.stream,
        user=body.user,
        tools=[
            ToolDefinition(FunctionDefinition(tool.name, tool.description, tool.parameters, tool.strict))
            for tool in tools
        ]
        or None,
        tool_choice=NamedToolChoice(FunctionName(tool_choice.name))
        if isinstance(tool_choice, FunctionToolChoice)
        else tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=_response_format(body.text),
        chat_template_kwargs=template_kwargs or None,
    )


def _response_format(text: TextConfig | None) -> ResponseFormat | None:
    if text is None:
        return None
    if isinstance(text.format, JsonSchemaTextFormat):
        fmt = text.format
        return JsonSchemaFormat(JsonSchemaSpec(fmt.name, fmt.schema, fmt.strict, fmt.description))
    if isinstance(text.format, JsonObjectTextFormat):
        return JsonObjectFormat()
    return None


def response_object(plan: ResponsePlan, usage: Usage | None) -> Response:
    """The non-streamed response: the choice's joined delta, through the same builder."""
    choice = plan.choice
    builder = OutputBuilder()
    builder.feed(Delta(choice.text, reasoning=choice.reasoning, tool_calls=choice.tool_calls))
    builder.finish(plan.final_status)
    return plan.finished(builder, usage)


class ResponseEvents:
    """The typed events of one streamed response, numbered in order; `keep` (the store) gets the
    final response before the event that tells the client it is done, so that a follow-up
    request can name it at once."""

    running_usage = False

    def __init__(self, plan: ResponsePlan, keep: Callable[[Response], Awaitable[None]] | None) -> None:
        self._plan = plan
        self._keep = keep
        self._builder = OutputBuilder()
        self._sequence = 0

    def opening(self, index: int) -> bytes:
        snapshot = self._plan.snapshot()  # both events are encoded at once
        return self._frames([ResponseCreated(0, snapshot), ResponseInProgress(0, snapshot)])

    def chunk(self, index: int, delta: Delta, usage: Usage | None = None, offset: int = 0) -> bytes:
        return self._frames(self._builder.feed(delta))

    async def closing(self, usage: Usage | None) -> bytes:
        events: list[Event | ResponseEvent] = list(self._builder.finish(self._plan.final_status))
        response = self._plan.finished(self._builder, usage)
        if self._keep is not None:
            await self._keep(response)
        ending = ResponseIncomplete if response.status == "incomplete" else ResponseCompleted
        return self._frames([*events, ending(0, response)])

    def failure(self, error: APIError) -> bytes:
        response = self._plan.snapshot("failed")
        response.output = self._builder.items
        response.error = ResponseError(error.code or "server_error", error.message)
        return self._frames([ResponseFailed(0, response)])

    def _frames(self, events: Sequence[Event | ResponseEvent]) -> bytes:
        out = bytearray()
        for event in events:
            event.sequence_number = self._sequence
            self._sequence += 1
            out += b"event: " + str(type(event).__struct_config__.tag).encode() + b"\ndata: "
            out += _ENCODER.encode(event) + b"\n\n"
        return bytes(out)
