"""Chat completions without a web framework: `plan_chat` turns a decoded request body into
complete generation requests (rendering the chat template, planning tools, checking what the
model can take), and `ChatStreamFormatter` / `chat_completion` render the choices' deltas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.chat.integrity import check_template_inputs, check_template_variables
from gateway.chat.tools.detect import parser_for_template
from gateway.errors import InvalidRequest
from gateway.generation import Delta, TokenizerTools, ToolCall
from gateway.model_info import ModelInfo
from gateway.openai.choices import Choice, plan_choices
from gateway.openai.context import GatewayState
from gateway.openai.logprobs import chat_logprobs
from gateway.openai.pipeline import StageFactory
from gateway.openai.reasoning import reasoning_stage
from gateway.openai.resolve import resolve_target
from gateway.openai.sampling import chat_max_tokens, check_common, generation_request, unsupported
from gateway.openai.stops import stop_stage
from gateway.openai.tools import ToolPlan, plan_tools_off_loop
from gateway.reasoning import FORMATS as REASONING_FORMATS
from gateway.reasoning import ReasoningFormat
from gateway.settings import per_model
from gateway.sse import ChunkStream
from gateway.structured import StructuredOutput
from gateway.triton.routing import routing_key
from schemas.requests import ChatCompletionRequest, ChatMessage, ImagePart, StreamOptions, TextPart
from schemas.responses import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    FunctionCall,
    FunctionCallDelta,
    ToolCallDelta,
    ToolCallMessage,
    Usage,
)

_CHUNK = "chat.completion.chunk"

# Roles the chat templates know; "developer" (OpenAI's newer name) is a system turn.
_TEMPLATE_ROLES = {"developer": "system"}


@dataclass(frozen=True, slots=True)
class ImageReference:
    url: str
    param: str  # where the request names it, for errors


def template_messages(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[ImageReference]]:
    """The messages as chat templates expect them (known roles; text content as a string, or
    a list of text and {"type": "image"} parts where images are), and the images in order."""
    rendered = []
    images: list[ImageReference] = []
    for i, message in enumerate(messages):
        if message.role == "function":
            raise unsupported(f"messages[{i}].role", "The deprecated 'function' role")
        content: Any = message.content
        if isinstance(content, list):
            parts: list[dict[str, str]] = []
            for j, part in enumerate(content):
                if isinstance(part, TextPart):
                    parts.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart):
                    parts.append({"type": "image"})
                    images.append(ImageReference(part.image_url.url, f"messages[{i}].content[{j}].image_url.url"))
                else:
                    kind = type(part).__struct_config__.tag
                    raise unsupported(f"messages[{i}].content[{j}]", f"A content part of type '{kind}'")
            has_images = any(part["type"] == "image" for part in parts)
            content = parts if has_images else "\n".join(part["text"] for part in parts)
        if content is None and message.role != "assistant":
            raise InvalidRequest(f"messages[{i}] ({message.role}) needs content.", param=f"messages[{i}].content")
        entry: dict[str, Any] = {"role": _TEMPLATE_ROLES.get(message.role, message.role), "content": content or ""}
        if message.name is not None:
            entry["name"] = message.name
        if message.tool_calls:
            entry["tool_calls"] = [
                _history_call(call, f"messages[{i}].tool_calls[{j}]") for j, call in enumerate(message.tool_calls)
            ]
        if message.tool_call_id is not None:
            entry["tool_call_id"] = message.tool_call_id
        rendered.append(entry)
    return rendered, images


def _history_call(call: dict[str, Any], param: str) -> dict[str, Any]:
    """An earlier assistant tool call, for the template: arguments as an object where they
    parse (templates write them out with tojson)."""
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest("A tool call needs function.name.", param=f"{param}.function.name")
    arguments: Any = function.get("arguments", "{}")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {
        "id": call.get("id", ""),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


async def load_images(state: GatewayState, model: ModelInfo, images: list[ImageReference]) -> list[bytes] | None:
    if not images:
        return None
    if not state.image_models.takes_images(model):
        raise InvalidRequest(
            f"The model '{model.name}' takes no images: {state.image_models.reason()}.",
            param=images[0].param.removesuffix(".image_url.url"),
            code="unsupported_parameter",
        )
    return list(await asyncio.gather(*(state.images.load(image.url, image.param) for image in images)))


def check_chat(body: ChatCompletionRequest) -> None:
    check_common(body)
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs set to true.", param="top_logprobs")


def chat_template_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """`chat_template_kwargs` for the template (e.g. enable_thinking), none of them reserved."""
    check_template_variables(options)
    return dict(options or {})


def check_prompt_inputs(
    state: GatewayState, model: str, body: ChatCompletionRequest, messages: list[dict[str, Any]], tools: ToolPlan
) -> None:
    """What the client gives the template, checked against the model's tokenizer: no special
    tokens in its text (unless --special-tokens-in-content allow), none of its special-token
    attributes in chat_template_kwargs."""
    tokens = state.tokenizers.control_tokens(model)
    if tokens is None:
        return  # no tokenizer: rendering refuses the request
    check_template_variables(body.chat_template_kwargs, tokens.attributes)
    if state.settings.special_tokens_in_content == "reject":
        check_template_inputs(tokens, body.messages, messages, tools.template_tools, body.chat_template_kwargs)


class ChatStreamFormatter(ChunkStream):
    def __init__(self, request_id: str, created: int, model: str, options: StreamOptions | None) -> None:
        envelope = ChatCompletionChunk(id=request_id, object=_CHUNK, created=created, model=model, choices=[])
        super().__init__(envelope, options)

    def opening(self, index: int) -> bytes:
        return self._framer.frame(ChatChunkChoice(index, ChatDelta(role="assistant", content="")))

    def chunk(self, index: int, delta: Delta, usage: Usage | None = None, offset: int = 0) -> bytes:
        logprobs = chat_logprobs(delta.logprobs) if delta.logprobs else None
        content = b""
        if delta.text or delta.reasoning or delta.finish_reason is not None or logprobs is not None:
            reasoning = delta.reasoning or None
            text = ChatDelta(content=delta.text or None, reasoning_content=reasoning, reasoning=reasoning)
            content = self._frame(ChatChunkChoice(index, text, delta.finish_reason, logprobs), usage)
        if not delta.tool_calls:
            return content  # most deltas
        # A call goes out as its id, type and name first, then its arguments as they come.
        calls = [
            self._frame(ChatChunkChoice(index, ChatDelta(tool_calls=[piece])))
            for part in delta.tool_calls
            for piece in _call_pieces(part)
        ]
        return b"".join([*calls, content])

    def _frame(self, choice: ChatChunkChoice, usage: Usage | None = None) -> bytes:
        return self._framer.frame(choice, usage)


def _call_pieces(part: ToolCall) -> list[ToolCallDelta]:
    """A call's part as OpenAI streams it: the header (index, id, type, name) for its first
    part, then the arguments it carries."""
    pieces = []
    if part.id:
        pieces.append(ToolCallDelta(part.index, part.id, "function", FunctionCallDelta(part.name, "")))
    if part.arguments:
        pieces.append(ToolCallDelta(part.index, function=FunctionCallDelta(arguments=part.arguments)))
    return pieces


@dataclass(frozen=True)
class ChatPlan:
    """A chat request, planned: every choice's complete generation request (nothing is changed
    after), and what rendering its deltas needs."""

    id: str  # chatcmpl-…
    created: int
    model_name: str  # as the client named it, shown in the response
    model: ModelInfo
    choices: list[Choice]  # each choice accumulates its own deltas
    tokenizer: TokenizerTools | None
    tools: ToolPlan
    stops: StageFactory
    reasoning: StageFactory
    structured: StructuredOutput
    stream: bool
    stream_options: StreamOptions | None

    @property
    def stages(self) -> list[StageFactory]:
        """The pipeline stages of each choice, in order."""
        return [self.stops, self.reasoning, self.tools.stage]

    def formatter(self) -> ChatStreamFormatter:
        return ChatStreamFormatter(self.id, self.created, self.model_name, self.stream_options)


async def plan_chat(
    body: ChatCompletionRequest, state: GatewayState, triton_request_id: str, conversation: str | None = None
) -> ChatPlan:
    """Check the request against the model it names and build its generation requests; any
    problem is an APIError naming the field, before anything reaches Triton. `conversation`:
    the key the client named its conversation by in the --routing-header header."""
    check_chat(body)
    messages, images = template_messages(body.messages)
    template_options = chat_template_options(body.chat_template_kwargs)
    structured = await StructuredOutput.checked(body.response_format)
    target = await resolve_target(state, body.model)
    model = target.model
    reasoning_name = per_model(state.settings.reasoning_parser, model.name)
    reasoning_format = REASONING_FORMATS.get(reasoning_name or "")
    tools = await plan_tools_off_loop(
        body,
        tool_parser_name(state, model.name),
        state.settings.max_tool_call_parse_bytes,
        reasoning_calls=reasoning_format is not None and reasoning_format.provides_calls,
    )
    check_prompt_inputs(state, model.name, body, messages, tools)
    if tools.template_tools is not None:
        template_options["tools"] = tools.template_tools
    image_data = await load_images(state, model, images)
    prompt = await state.tokenizers.render_chat_async(model.name, messages, **template_options)
    tokenizer = state.tokenizers.tools(model.name, model.adds_special_tokens)
    if tokenizer is not None:
        prompt = tokenizer.text_input(prompt)  # no BOS text the backend would add once more
    max_tokens = await chat_max_tokens(
        body.max_completion_tokens or body.max_tokens,
        state.model_files.max_model_len(model),
        prompt,
        tokenizer,
        state.settings.default_chat_max_tokens,
    )
    generation = generation_request(
        body,
        request_id=triton_request_id,
        prompt=prompt,
        max_tokens=max_tokens,
        guided=tools.guided or structured.guided,
        vocab_size=tokenizer.vocab_size() if tokenizer else None,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        logprobs_param="top_logprobs",
        images=image_data,
        lora_name=target.adapter,
        lora_path=target.adapter_path,
        keep_special_tokens=model.flavour.keeps_special_tokens_on_request and _parses_markers(reasoning_format, tools),
        routing_key=routing_key(conversation_start(body.messages), conversation or body.user)
        if state.prefix_routing
        else None,
    )
    return ChatPlan(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model_name=body.model,
        model=model,
        choices=plan_choices(generation, [prompt], body.n),
        tokenizer=tokenizer,
        tools=tools,
        stops=stop_stage(generation, model.flavour),
        reasoning=reasoning_stage(
            reasoning_name,
            body.chat_template_kwargs,
            prompt,
            guided=generation.guided is not None,
            guide_after_reasoning=state.model_files.guides_after_reasoning(model),
            tokenizer=tokenizer,
            calls=tools.reasoning_calls,
            max_calls=tools.max_calls,
            max_bytes=tools.max_bytes,
        ),
        structured=structured,
        stream=body.stream,
        stream_options=body.stream_options,
    )


def conversation_start(messages: list[ChatMessage]) -> str:
    """The messages up to and including the first user turn: what every later turn of the
    conversation sends again, so its routing key stays the same."""
    parts = []
    for message in messages:
        content = message.content
        if isinstance(content, list):
            content = " ".join(part.text for part in content if isinstance(part, TextPart))
        parts.append(f"{message.role}\x1f{content or ''}")
        if message.role == "user":
            break
    return "\x1e".join(parts)


def tool_parser_name(state: GatewayState, model: str) -> str | None:
    """The model's `--tool-call-parser`; for `auto`, the format its chat template writes."""
    name = per_model(state.settings.tool_call_parser, model)
    if name != "auto":
        return name
    tokenizer = state.tokenizers.tokenizer(model)
    return parser_for_template(getattr(tokenizer, "chat_template", None))


def _parses_markers(reasoning: ReasoningFormat | None, tools: ToolPlan) -> bool:
    """Whether the reply is parsed for markers that are special tokens in most vocabularies
    (tool-call tags, harmony channels), which the backend must then keep in its text, as vLLM's
    own server asks of it for its parsers."""
    return (reasoning is not None and reasoning.needs_special_tokens) or (
        tools.fmt is not None and tools.guided is None
    )


def chat_completion(plan: ChatPlan, usage: Usage | None) -> ChatCompletion:
    """The non-streamed response: the choices' joined deltas."""
    choices = [_chat_choice(choice) for choice in plan.choices]
    return ChatCompletion(id=plan.id, created=plan.created, model=plan.model_name, choices=choices, usage=usage)


def _chat_choice(choice: Choice) -> ChatChoice:
    calls = choice.tool_calls
    content = choice.text
    reasoning = choice.reasoning or None
    message = AssistantMessage(
        role="assistant",
        content=content if content.strip() or not calls else None,
        tool_calls=[ToolCallMessage(call.id, FunctionCall(call.name, call.arguments)) for call in calls] or None,
        reasoning_content=reasoning,
        reasoning=reasoning,
    )
    logprobs = chat_logprobs(choice.logprobs) if choice.logprobs is not None else None
    return ChatChoice(choice.index, message, choice.finish_reason or "stop", logprobs)
