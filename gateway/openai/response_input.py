"""A Responses request's input, as the chat pipeline takes it: input items (a string, or objects
whose `type` may be left out) checked one by one, given ids, and turned into chat messages that
remember which item each came from, so that an error found later names the item."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import msgspec

from gateway.errors import APIError, InvalidRequest, validation_error
from gateway.openai.sampling import unsupported
from schemas.requests import ChatMessage, ContentPart, ImagePart, ImageURL, TextPart
from schemas.responses_api import (
    FunctionCallItem,
    FunctionCallOutput,
    FunctionCallOutputItem,
    InputContent,
    InputImage,
    InputItem,
    InputText,
    MessageItem,
    OutputItem,
    OutputMessage,
    OutputTextInput,
    ReasoningItem,
    ReasoningOutput,
    RefusalInput,
)

_ITEM_TYPES: dict[str, type[InputItem]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}
_ID_PREFIXES = {MessageItem: "msg", FunctionCallItem: "fc", FunctionCallOutputItem: "fco", ReasoningItem: "rs"}


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(given: str | list[dict[str, object]]) -> list[InputItem]:
    """The request's `input` as items, each with an id (kept, or made)."""
    if isinstance(given, str):
        return [MessageItem(role="user", content=given, id=new_item_id("msg"))]
    if not given:
        raise InvalidRequest("input needs at least one item.", param="input")
    items = []
    for index, raw in enumerate(given):
        kind = raw.get("type", "message")
        item_type = _ITEM_TYPES.get(kind) if isinstance(kind, str) else None
        if item_type is None:
            raise unsupported(f"input[{index}].type", f"An input item of type {kind!r}")
        try:
            item = msgspec.convert(raw, item_type)
        except msgspec.ValidationError as exc:
            raise validation_error(exc, f"input[{index}]") from None
        if item.id is None:
            item = msgspec.structs.replace(item, id=new_item_id(_ID_PREFIXES[item_type]))
        items.append(item)
    return items


def output_as_input(output: list[OutputItem]) -> list[InputItem]:
    """A stored response's output, as the input items of the turn that follows it."""
    items: list[InputItem] = []
    for item in output:
        if isinstance(item, OutputMessage):
            parts: list[InputContent] = [OutputTextInput(part.text) for part in item.content]
            items.append(MessageItem(role="assistant", content=parts, id=item.id, status=item.status))
        elif isinstance(item, FunctionCallOutput):
            items.append(FunctionCallItem(call_id=item.call_id, name=item.name, arguments=item.arguments, id=item.id))
        elif isinstance(item, ReasoningOutput):
            items.append(ReasoningItem(id=item.id, content=item.content or None))
    return items


@dataclass(frozen=True)
class ChatInput:
    """The chat messages made of the items, and for each message where it came from (a request
    field such as `input[3]`, `instructions` or `previous_response_id`)."""

    messages: list[ChatMessage]
    origins: list[str]

    def translated(self, error: APIError) -> APIError:
        """`error` from the chat pipeline, its chat field names replaced by this API's."""
        error.message = self._renamed(error.message)
        if error.param is not None:
            error.param = self._renamed(error.param)
        return error

    def _renamed(self, text: str) -> str:
        text = _MESSAGE_FIELD.sub(self._origin, text)
        for chat_name, name in _RENAMED:
            text = text.replace(chat_name, name)
        return _TOOL_FIELD.sub(r"tools[\1].", text)

    def _origin(self, match: re.Match[str]) -> str:
        index = int(match.group(1))
        origin = self.origins[index] if index < len(self.origins) else "input"
        return origin + match.group(2) if origin.startswith("input[") else origin


_MESSAGE_FIELD = re.compile(r"messages\[(\d+)\]((?:\.\w+|\[\d+\])*)")
_TOOL_FIELD = re.compile(r"tools\[(\d+)\]\.function\.")
_RENAMED = (  # longest first
    ("max_completion_tokens", "max_output_tokens"),
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("tool_choice.function.", "tool_choice."),
    ("].image_url.url", "].image_url"),
)


def chat_input(items: list[InputItem], instructions: str | None, inherited: int = 0) -> ChatInput:
    """Chat messages for `items` (the first `inherited` of which come from the previous
    response), after `instructions` as the system turn. A run of function calls becomes one
    assistant turn; reasoning is left out, as chat templates leave out earlier thinking."""
    messages: list[ChatMessage] = []
    origins: list[str] = []
    if instructions is not None:
        messages.append(ChatMessage(role="system", content=instructions))
        origins.append("instructions")
    for index, item in enumerate(items):
        origin = "previous_response_id" if index < inherited else f"input[{index - inherited}]"
        if isinstance(item, MessageItem):
            messages.append(ChatMessage(role=item.role, content=_content(item.content, origin)))
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or ()), call]
                continue
            messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else _text_of(item.output, f"{origin}.output")
            messages.append(ChatMessage(role="tool", content=output, tool_call_id=item.call_id))
        else:
            continue  # reasoning
        origins.append(origin)
    if all(origin == "instructions" for origin in origins):
        raise InvalidRequest("input has nothing for the model to answer.", param="input")
    return ChatInput(messages, origins)


def _content(content: str | list[InputContent], origin: str) -> str | list[ContentPart]:
    if isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for index, part in enumerate(content):
        param = f"{origin}.content[{index}]"
        if isinstance(part, InputText | OutputTextInput):
            parts.append(TextPart(part.text))
        elif isinstance(part, RefusalInput):
            parts.append(TextPart(part.refusal))
        elif isinstance(part, InputImage):
            if part.image_url is None:
                raise unsupported(f"{param}.file_id", "An image by file id (there is no Files API here)")
            parts.append(ImagePart(ImageURL(part.image_url, part.detail)))
        else:
            raise unsupported(param, "An input_file part")
    return parts


def _text_of(content: list[InputContent], param: str) -> str:
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, InputText | OutputTextInput):
            raise unsupported(f"{param}[{index}]", "A function call output other than text")
        texts.append(part.text)
    return "\n".join(texts)
