"""Stop strings as a stage of a choice's deltas, for backends whose engine does not apply them
(TensorRT-LLM's pipelines and LLM API model, plain text models; vLLM stops by itself).

The text is cut at the first stop string (kept with `include_stop_str_in_output`) and the
choice ends there with finish_reason "stop". While streaming, a tail that could still become
a stop string is held back until a later delta tells. Per-token logprobs go with their text:
a token wholly past the cut is dropped, one the cut runs through keeps its visible part and
its value, and text is held back from a token boundary, so a delta's tokens still join to its
text. Token counts and the cumulative logprob pass through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gateway.generation import Delta, GenerationRequest, TokenLogprob
from gateway.markers import partial_marker
from gateway.model_info import Flavour
from gateway.openai.pipeline import StageFactory


def cut_at_stop(text: str, stops: Sequence[str], keep_stop: bool = False) -> tuple[str, bool]:
    """`text` up to the first stop string (through it with `keep_stop`), and whether one was found."""
    found = [(index, len(stop)) for stop in stops if stop and (index := text.find(stop)) != -1]
    if not found:
        return text, False
    index, length = min(found)
    return text[: index + length] if keep_stop else text[:index], True


class StopStringStage:
    __slots__ = ("_keep_stop", "_pending", "_stops", "_tokens")

    def __init__(self, stops: Sequence[str], keep_stop: bool = False) -> None:
        self._stops = [stop for stop in stops if stop]
        self._keep_stop = keep_stop
        self._pending = ""  # text not shown yet: it may be the start of a stop string
        self._tokens: list[TokenLogprob] | None = None  # its tokens, when logprobs come

    def feed(self, delta: Delta) -> Delta:
        if delta.logprobs is not None:
            self._tokens = [*(self._tokens or ()), *delta.logprobs]
        self._pending += delta.text
        cut, stopped = cut_at_stop(self._pending, self._stops, self._keep_stop)
        if stopped:
            return self._release(delta, len(cut), "stop")
        if delta.finish_reason is not None:
            return self._release(delta, len(self._pending), delta.finish_reason)
        held = partial_marker(self._pending, self._stops)
        return self._release(delta, self._token_start(len(self._pending) - held), None)

    def _release(self, delta: Delta, length: int, finish_reason: str | None) -> Delta:
        """`delta` carrying the first `length` characters not shown yet, and their tokens."""
        shown, self._pending = self._pending[:length], self._pending[length:]
        tokens = delta.logprobs
        if self._tokens is not None:
            tokens, self._tokens = _split_tokens(self._tokens, length)
        return replace(delta, text=shown, finish_reason=finish_reason, logprobs=tokens)

    def _token_start(self, length: int) -> int:
        """`length`, or the start of the token not shown yet that it runs through."""
        end = 0
        for token in self._tokens or ():
            if end + len(token.token) > length:
                return end
            end += len(token.token)
        return length


def _split_tokens(tokens: list[TokenLogprob], length: int) -> tuple[list[TokenLogprob], list[TokenLogprob]]:
    """(the tokens of the first `length` characters, the rest); a token that runs past them
    keeps its visible part, and what follows is dropped with it."""
    start = 0
    for index, token in enumerate(tokens):
        if start >= length:
            return tokens[:index], tokens[index:]
        end = start + len(token.token)
        if end > length:
            visible = token.token[: length - start]
            top = tuple((visible if text == token.token else text, value) for text, value in token.top)
            return [*tokens[:index], TokenLogprob(visible, token.logprob, top)], []
        start = end
    return tokens, []


def stop_stage(request: GenerationRequest, flavour: Flavour) -> StageFactory:
    """A choice's stop-string stage, when its backend leaves stop strings to the gateway."""
    if flavour.applies_stop_strings or not request.stop:
        return lambda: None
    keep = bool(request.sampling.include_stop_str_in_output)
    return lambda: StopStringStage(request.stop, keep)
