"""The stop-string stage over fake deltas: every split of the text, logprobs kept with their
text, counts passed through, and which backends get the stage."""

from __future__ import annotations

import itertools

import pytest

from gateway.backends import generic, trtllm, vllm
from gateway.generation import Delta, TokenLogprob
from gateway.openai.stops import StopStringStage, cut_at_stop, stop_stage
from tests.conftest import generation_request

TEXT = "Grüße aus 東京 😀 and then stop here, never shown"


def through(stage: StopStringStage, deltas: list[Delta]) -> list[Delta]:
    """What the pipeline does: feed deltas until one ends the choice."""
    passed = []
    for delta in deltas:
        passed.append(stage.feed(delta))
        if passed[-1].finish_reason is not None:
            break
    return passed


def pieces_of(text: str, cuts: list[int]) -> list[Delta]:
    bounds = [0, *cuts, len(text)]
    return [Delta(text[a:b]) for a, b in itertools.pairwise(bounds)] + [Delta("", "length")]


def test_the_text_is_cut_at_every_chunk_boundary() -> None:
    stops = ["stop here", "zzz"]
    expected, found = cut_at_stop(TEXT, stops)
    assert found and expected == "Grüße aus 東京 😀 and then "
    splits = [[cut] for cut in range(len(TEXT) + 1)] + [list(range(1, len(TEXT)))]
    for cuts in splits:
        passed = through(StopStringStage(stops), pieces_of(TEXT, cuts))
        assert "".join(delta.text for delta in passed) == expected
        assert passed[-1].finish_reason == "stop"


def test_a_false_alarm_is_released() -> None:
    stage = StopStringStage(["stop here"])
    assert stage.feed(Delta("a sto")).text == "a "
    assert stage.feed(Delta("ry")).text == "story"
    assert stage.feed(Delta(" st")).text == " "
    last = stage.feed(Delta("", "length"))
    assert (last.text, last.finish_reason) == ("st", "length")


def test_the_stop_string_is_kept_when_asked() -> None:
    passed = through(StopStringStage(["END"], keep_stop=True), [Delta("yes EN"), Delta("D more")])
    assert "".join(delta.text for delta in passed) == "yes END"
    assert passed[-1].finish_reason == "stop"


def test_counts_pass_through_held_back_deltas() -> None:
    stage = StopStringStage(["END"])
    held = stage.feed(Delta("E", prompt_tokens=5, completion_tokens=1, cumulative_logprob=-0.5))
    assert (held.text, held.prompt_tokens, held.completion_tokens, held.cumulative_logprob) == ("", 5, 1, -0.5)
    stopped = stage.feed(Delta("ND", completion_tokens=1))
    assert (stopped.text, stopped.completion_tokens, stopped.finish_reason) == ("", 1, "stop")


def tokens(*pieces: str) -> list[TokenLogprob]:
    return [TokenLogprob(piece, -float(index + 1), ((piece, -float(index + 1)),)) for index, piece in enumerate(pieces)]


def test_a_token_the_cut_runs_through_keeps_its_visible_part_and_value() -> None:
    delta = Delta(": yes END", "stop", logprobs=tokens(":", " yes", " END"))
    passed = StopStringStage(["END"]).feed(delta)
    assert passed.text == ": yes "
    assert passed.logprobs == [*tokens(":", " yes"), TokenLogprob(" ", -3.0, ((" ", -3.0),))]


@pytest.mark.parametrize("cut", range(1, 4))
def test_held_back_text_keeps_its_tokens_and_each_delta_joins_to_its_text(cut: int) -> None:
    words = ["Say", " yes", " ST", "OP", " never"]
    deltas = [Delta("".join(words[:cut]), logprobs=tokens(*words[:cut]))]
    deltas.append(Delta("".join(words[cut:]), "length", logprobs=tokens(*words[cut:])))
    passed = through(StopStringStage([" STOP"]), deltas)
    for delta in passed:
        assert "".join(token.token for token in delta.logprobs or []) == delta.text
    assert "".join(delta.text for delta in passed) == "Say yes"
    assert passed[-1].finish_reason == "stop"


def test_logprobs_stay_absent_when_not_asked_for() -> None:
    assert StopStringStage(["x"]).feed(Delta("abc")).logprobs is None


def test_only_backends_that_leave_stop_strings_to_the_gateway_get_the_stage() -> None:
    request = generation_request(stop=["END"])
    assert stop_stage(request, vllm.VLLM)() is None  # vLLM's engine stops by itself
    for flavour in (trtllm.ENSEMBLE, trtllm.BLS, trtllm.LLM_API, generic.PLAIN_TEXT):
        assert isinstance(stop_stage(request, flavour)(), StopStringStage)
    assert stop_stage(generation_request(), trtllm.BLS)() is None
