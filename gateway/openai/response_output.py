"""The output items of a Responses answer, built from the choice's deltas: reasoning, message
and function-call items in the order the model produced them, each with the events that
stream it. A non-streamed response feeds the choice's joined delta, a streamed one each delta
as it comes, so both end with the same items."""

from __future__ import annotations

import msgspec

from gateway.generation import Delta
from gateway.openai.response_input import new_item_id
from schemas.responses_api import (
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    FunctionCallOutput,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    OutputTextDelta,
    OutputTextDone,
    ReasoningOutput,
    ReasoningText,
    ReasoningTextDelta,
    ReasoningTextDone,
)

# Events are made before their sequence number is known: the formatter numbers them as they go out.
Event = OutputItemEvent
_UNNUMBERED = -1


class OutputBuilder:
    def __init__(self) -> None:
        self.items: list[OutputItem] = []
        self._open: OutputItem | None = None
        self._text: list[str] = []  # the open item's text so far
        self._calls: dict[int, FunctionCallOutput] = {}  # by the call's index in the choice
        self._blank = ""  # whitespace not yet shown: it opens no message before a call

    def feed(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning:
            if not isinstance(self._open, ReasoningOutput):
                events += self._close("completed")
                events += self._start(ReasoningOutput(id=new_item_id("rs"), status="in_progress"), ReasoningText(""))
            events.append(ReasoningTextDelta(_UNNUMBERED, self._open_id, self._index, 0, delta.reasoning))
            self._text.append(delta.reasoning)
        if delta.text:
            events += self._text_delta(delta.text)
        for part in delta.tool_calls or ():
            if part.id:
                events += self._close("completed")
                call = FunctionCallOutput(
                    id=new_item_id("fc"), call_id=part.id, name=part.name, arguments="", status="in_progress"
                )
                self._calls[part.index] = call
                events += self._start(call, None)
            call = self._calls[part.index]
            if part.arguments:
                if call is not self._open:  # a later part of an earlier call: not how calls stream
                    call.arguments += part.arguments
                    continue
                events.append(FunctionCallArgumentsDelta(_UNNUMBERED, call.id, self._index, part.arguments))
                self._text.append(part.arguments)
        return events

    def finish(self, status: str) -> list[Event]:
        """Close the open item with `status`; an answer with neither text nor calls still
        gets its (empty) message."""
        events: list[Event] = []
        if not self._calls and not any(isinstance(item, OutputMessage) for item in self.items):
            events += self._text_delta("", show_blank=True)
        return events + self._close(status)

    @property
    def _index(self) -> int:
        return len(self.items) - 1

    @property
    def _open_id(self) -> str:
        assert self._open is not None
        return self._open.id

    def _text_delta(self, text: str, show_blank: bool = False) -> list[Event]:
        events: list[Event] = []
        if not isinstance(self._open, OutputMessage):
            if not text.strip() and not show_blank:
                self._blank += text
                return events
            text, self._blank = self._blank + text, ""
            events += self._close("completed")
            events += self._start(OutputMessage(id=new_item_id("msg"), status="in_progress"), OutputText(""))
        if text:
            events.append(OutputTextDelta(_UNNUMBERED, self._open_id, self._index, 0, text))
            self._text.append(text)
        return events

    def _start(self, item: OutputItem, part: OutputText | ReasoningText | None) -> list[Event]:
        self.items.append(item)
        self._open = item
        self._text = []
        events: list[Event] = [OutputItemAdded(_UNNUMBERED, self._index, _copy(item))]
        if part is not None:
            events.append(ContentPartAdded(_UNNUMBERED, item.id, self._index, 0, part))
        return events

    def _close(self, status: str) -> list[Event]:
        item = self._open
        if item is None:
            return []
        self._open = None
        text = "".join(self._text)
        index = self.items.index(item)
        events: list[Event]
        if isinstance(item, OutputMessage):
            item.content = [OutputText(text)]
            events = [
                OutputTextDone(_UNNUMBERED, item.id, index, 0, text),
                ContentPartDone(_UNNUMBERED, item.id, index, 0, OutputText(text)),
            ]
        elif isinstance(item, ReasoningOutput):
            item.content = [ReasoningText(text)]
            events = [
                ReasoningTextDone(_UNNUMBERED, item.id, index, 0, text),
                ContentPartDone(_UNNUMBERED, item.id, index, 0, ReasoningText(text)),
            ]
        else:
            item.arguments = text + item.arguments
            events = [FunctionCallArgumentsDone(_UNNUMBERED, item.id, index, item.name, item.arguments)]
        item.status = status  # type: ignore[assignment]
        events.append(OutputItemDone(_UNNUMBERED, index, _copy(item)))
        return events


def _copy(item: OutputItem) -> OutputItem:
    """The item as it is now (the builder goes on changing its own fields; it replaces its
    content lists rather than changing them)."""
    return msgspec.structs.replace(item)
