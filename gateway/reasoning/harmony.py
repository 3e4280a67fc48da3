"""gpt-oss's harmony output, read from text: a reply is a run of messages, each a header and a
body, `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…<|return|>`.

- The prompt ends with `<|start|>assistant`, so the reply opens with the first message's header.
- A header names the channel (`analysis`, `commentary`, `final`) and may name a recipient,
  `to=functions.NAME`, before or after `<|channel|>`, with a content type (` json` or
  `<|constrain|>json`). The body runs to `<|end|>` (another message follows), `<|return|>`
  (the answer is done) or `<|call|>` (a tool call is done); a reply cut short ends its message.
- analysis bodies are thinking; final bodies, and commentary bodies without a recipient (a
  preamble before a call), are the answer; a body addressed to `functions.NAME` is a call of
  NAME with the body as arguments (streamed as it comes: the model's own JSON, so the pieces
  join to the arguments of the whole reply); bodies for the built-in tools (python, browser, container)
  are dropped. Several thinking or answer bodies are joined with a newline, as vLLM joins them.

The markers are special tokens of the o200k_harmony vocabulary: they reach the gateway only when
the backend keeps special tokens in its text (vLLM: `skip_special_tokens: false`, which the
gateway sends; TensorRT-LLM: the postprocessing model's `skip_special_tokens` parameter).

Why not the `openai-harmony` package: its StreamableParser reads token ids, and the gateway
gets text from Triton; re-encoding the text needs the o200k vocabulary, which openai-harmony
0.0.8 downloads at run time (a gateway may be offline). The grammar is small enough to read
from the text directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.chat.tools.base import ToolCallOverflow, new_call_id
from gateway.generation import ToolCall
from gateway.markers import partial_marker

START, CHANNEL, MESSAGE, CONSTRAIN = "<|start|>", "<|channel|>", "<|message|>", "<|constrain|>"
ENDS = ("<|end|>", "<|return|>", "<|call|>")
_MARKERS = (START, CHANNEL, MESSAGE, *ENDS)
_RECIPIENT = re.compile(r"\bto=(\S+)")
_BUILT_IN = ("python", "browser.", "container.")


@dataclass(frozen=True)
class HarmonyReasoning:
    """The harmony format: gpt-oss always thinks (its reasoning effort only sets how much)."""

    name: str = "openai_gptoss"
    provides_calls: bool = True  # its calls are messages to functions.NAME
    needs_special_tokens: bool = True  # the channel markers are special tokens

    def thinks(self, template_kwargs: Mapping[str, Any] | None, prompt: str) -> bool:
        return True

    def parser(self, calls: bool = True, max_calls: int | None = None, max_bytes: int = 131072) -> HarmonyParser:
        return HarmonyParser(calls, max_calls, max_bytes)


@dataclass
class HarmonyOutput:
    """What one piece of text added: thinking, answer, and the calls it completed."""

    reasoning: str = ""
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)


class HarmonyParser:
    """Feed text as it arrives; `finish` when the model is done. `calls` says whether bodies
    addressed to functions become tool calls (a request with tools) or are dropped."""

    def __init__(self, calls: bool = True, max_calls: int | None = None, max_bytes: int = 131072) -> None:
        self._calls_allowed = calls
        self._max_calls = max_calls
        self._max_bytes = max_bytes
        self.calls: list[ToolCall] = []
        self._state = "header"
        self._pending = ""  # text not decided yet: a possible marker
        self._header = ""
        self._route = ""  # where the current body goes: reasoning, content, call, or "" (dropped)
        self._arguments = ""
        self._written = {"reasoning": False, "content": False}  # a body was shown: join the next with "\n"
        self._fresh = True  # the current body has shown nothing yet

    @property
    def thinking(self) -> bool:
        """Whether the answer has not begun yet."""
        return not self._written["content"]

    def feed(self, text: str) -> HarmonyOutput:
        return self._read(self._pending + text, final=False)

    def finish(self) -> HarmonyOutput:
        out = self._read(self._pending, final=True)
        if self._state == "body":
            self._end_body(out)
        return out

    def _read(self, text: str, final: bool) -> HarmonyOutput:
        self._pending = ""
        out = HarmonyOutput()
        while text:
            found = [(index, marker) for marker in _MARKERS if (index := text.find(marker)) != -1]
            if not found:
                keep = 0 if final else partial_marker(text, _MARKERS)
                self._take(text[: len(text) - keep], out)
                self._pending = text[len(text) - keep :]
                return out
            index, marker = min(found)
            self._take(text[:index], out)
            self._on_marker(marker, out)
            text = text[index + len(marker) :]
        return out

    def _take(self, text: str, out: HarmonyOutput) -> None:
        if not text:
            return
        if self._state == "header":
            self._header += text
            if len(self._header) > self._max_bytes:
                self._header = self._header[-self._max_bytes :]
        elif self._state == "body":
            self._body(text, out)

    def _on_marker(self, marker: str, out: HarmonyOutput) -> None:
        if marker == MESSAGE and self._state == "header":
            self._open_body(out)
        elif marker in ENDS and self._state == "body":
            self._end_body(out)
        elif marker == START:
            if self._state == "body":
                self._end_body(out)
            self._state, self._header = "header", ""
        elif marker == CHANNEL and self._state == "header":
            self._header += f" {CHANNEL} "  # spaced: `to=functions.f<|channel|>` names f

    def _open_body(self, out: HarmonyOutput) -> None:
        header = self._header.replace(CONSTRAIN, " ")
        self._state, self._header, self._fresh = "body", "", True
        recipient = next(iter(_RECIPIENT.findall(header)), "")
        after_channel = header.partition(CHANNEL)[2].split()
        channel = after_channel[0] if after_channel else ""
        if recipient:
            name = recipient.removeprefix("functions.")
            is_function = recipient.startswith("functions.") or not recipient.startswith(_BUILT_IN)
            self._route = "call" if is_function and name and self._calls_allowed else ""
            self._arguments = ""
            if self._route == "call" and (self._max_calls is None or len(self.calls) < self._max_calls):
                call = ToolCall(len(self.calls), new_call_id(), name, "")  # the name is known
                self.calls.append(call)
                out.calls.append(call)
            elif self._route == "call":
                self._route = ""  # past max_calls
        elif channel == "analysis":
            self._route = "reasoning"
        elif channel in ("final", "commentary"):
            self._route = "content"
        else:
            self._route = ""

    def _body(self, text: str, out: HarmonyOutput) -> None:
        if self._route == "call":
            self._arguments += text
            if len(self._arguments) > self._max_bytes:
                raise ToolCallOverflow
            out.calls.append(ToolCall(len(self.calls) - 1, "", "", text))  # the arguments as they come
            return
        if self._route not in ("reasoning", "content"):
            return
        if self._fresh and self._written[self._route]:
            text = "\n" + text
        self._fresh = False
        self._written[self._route] = True
        if self._route == "reasoning":
            out.reasoning += text
        else:
            out.content += text

    def _end_body(self, out: HarmonyOutput) -> None:
        if self._route == "call" and not self._arguments.strip():
            out.calls.append(ToolCall(len(self.calls) - 1, "", "", "{}"))
        self._state, self._route, self._header = "between", "", ""
