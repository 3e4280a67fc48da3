"""An incremental splitter of a reply into thinking and answer, for formats that mark the
thinking with text (tags such as <think>…</think>, or phrases).

Text is read once, left to right. At the start, a start marker (after any whitespace) opens
the thinking; a format whose chat template opens it in the prompt is in the thinking from the
first character. In the thinking, an end marker (dropped) or a marker that begins the answer
(kept, e.g. a tool call) closes it; a tail that could still become a marker is held back until
later text tells. Without an end marker the whole reply is thinking. The outcome depends only on
the whole text, never on where the backend split it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.markers import partial_marker


class ReasoningParser(Protocol):
    """Feed text as it arrives, (thinking, answer) out; `finish` when the model is done."""

    @property
    def thinking(self) -> bool:
        """Whether the text read so far may still be thinking."""
        ...

    def feed(self, text: str) -> tuple[str, str]: ...

    def finish(self) -> tuple[str, str]: ...


@dataclass(frozen=True)
class ThinkingSwitch:
    """The chat_template_kwargs that turn a model's thinking on or off, and its default."""

    keys: tuple[str, ...]
    default: bool

    def thinks(self, template_kwargs: Mapping[str, Any] | None) -> bool:
        for key in self.keys:
            value = (template_kwargs or {}).get(key)
            if isinstance(value, bool):
                return value
        return self.default


@dataclass(frozen=True)
class MarkedReasoning:
    """How one model family marks its thinking."""

    name: str
    starts: tuple[str, ...]
    ends: tuple[str, ...]
    opens_thinking: bool = False  # the template opens the thinking: the reply starts in it
    answer_starts: tuple[str, ...] = ()  # markers that end the thinking and begin the answer
    switch: ThinkingSwitch | None = None
    provides_calls: bool = False  # tool calls are the tool-call parser's (--tool-call-parser)
    needs_special_tokens: bool = False  # the markers are plain text in the backend's output

    def thinks(self, template_kwargs: Mapping[str, Any] | None, prompt: str) -> bool:
        """Whether a reply to `prompt` is parsed for thinking: not when the request turned it
        off, nor when the prompt itself closed it (a template that writes an empty thinking)."""
        if self.switch is not None and not self.switch.thinks(template_kwargs):
            return False
        tail = prompt.rstrip()
        return not any(tail.endswith(end) for end in self.ends)

    def parser(self) -> MarkedReasoningParser:
        return MarkedReasoningParser(self)


class MarkedReasoningParser:
    __slots__ = ("_fmt", "_markers", "_pending", "_state")

    def __init__(self, fmt: MarkedReasoning) -> None:
        self._fmt = fmt
        self._state = "opening"  # then "thinking" or "answer"
        self._pending = ""  # text not decided yet: leading whitespace, or a possible marker
        self._markers = fmt.ends + fmt.answer_starts

    @property
    def thinking(self) -> bool:
        return self._state != "answer"

    def feed(self, text: str) -> tuple[str, str]:
        return self._read(self._pending + text, final=False)

    def finish(self) -> tuple[str, str]:
        return self._read(self._pending, final=True)

    def _read(self, text: str, final: bool) -> tuple[str, str]:
        self._pending = ""
        thinking = answer = ""
        if self._state == "opening":
            text = self._open(text, final)
        if self._state == "thinking" and text:
            shown, text = self._think(text, final)
            thinking += shown
        if self._state == "answer":
            answer += text
        return thinking, answer

    def _open(self, text: str, final: bool) -> str:
        stripped = text.lstrip()
        for marker in self._fmt.starts:
            if stripped.startswith(marker):
                self._state = "thinking"
                return stripped[len(marker) :]
        if not final and (not stripped or any(marker.startswith(stripped) for marker in self._fmt.starts)):
            self._pending = text  # whitespace, or the beginning of a start marker
            return ""
        self._state = "thinking" if self._fmt.opens_thinking else "answer"
        return text

    def _think(self, text: str, final: bool) -> tuple[str, str]:
        """(thinking shown now, the answer's text if the thinking ended)."""
        found = [(index, marker) for marker in self._markers if (index := text.find(marker)) != -1]
        if found:
            index, marker = min(found, key=lambda item: (item[0], -len(item[1])))
            self._state = "answer"
            rest = text[index + len(marker) :] if marker in self._fmt.ends else text[index:]
            return text[:index], rest
        keep = 0 if final else partial_marker(text, self._markers)
        self._pending = text[len(text) - keep :]
        return text[: len(text) - keep], ""
