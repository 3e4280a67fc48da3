from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.generation import Delta
from gateway.openai.sampling import check_common, generation_request, stop_strings
from gateway.usage import UsageTracker
from schemas.requests import CompletionRequest, StreamOptions
from schemas.responses import Usage
from tests.conftest import WordTokenizer


def test_usage_sums_backend_counts() -> None:
    tracker = UsageTracker()
    for delta in (Delta("a", None, 5, 1), Delta("b", None, 5, 2), Delta("", "stop", 5, 1)):
        tracker.add(delta)
    assert tracker.usage("prompt", "ab", None) == Usage(5, 4, 9)


def test_usage_counts_with_the_tokenizer_only_what_is_missing() -> None:
    tracker = UsageTracker()
    tracker.add(Delta("a b c", "stop"))
    assert tracker.usage("x y", "a b c", WordTokenizer()) == Usage(2, 3, 5)
    assert tracker.usage("x y", "a b c", None) is None


def test_stop_strings() -> None:
    assert stop_strings(None) == []
    assert stop_strings("x") == ["x"]
    assert stop_strings(["a", "", "b"]) == ["a", "b"]


def test_generation_request_takes_the_sampling_fields() -> None:
    body = CompletionRequest(model="m", prompt="p", temperature=0.2, top_p=0.9, seed=4, stop="s", stream=True)
    generation = generation_request(body, request_id="id", prompt="p", max_tokens=7)
    sampling = generation.sampling
    assert (sampling.temperature, sampling.top_p, sampling.seed, generation.stop) == (0.2, 0.9, 4, ["s"])
    assert generation.stream and generation.max_tokens == 7 and generation.request_id == "id"


def test_stream_options_need_stream() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_common(CompletionRequest(model="m", prompt="p", stream_options=StreamOptions(include_usage=True)))
    assert caught.value.param == "stream_options"


def test_the_sampling_vocabulary_is_the_apis() -> None:
    """Each Sampling field is the request field of that name; the backends' tables cover them."""
    from gateway.backends import trtllm, vllm
    from gateway.generation import SAMPLING_FIELDS

    assert set(SAMPLING_FIELDS) <= set(CompletionRequest.__struct_fields__)
    assert set(vllm._SAMPLING_KEYS) == set(SAMPLING_FIELDS)
    for table in (trtllm._PIPELINE_INPUTS, trtllm._LLM_API_INPUTS):
        assert set(SAMPLING_FIELDS) - set(trtllm._REFUSED) <= set(table)


def test_special_tokens_are_kept_when_the_output_is_parsed_for_them() -> None:
    from gateway.openai.sampling import generation_request as plan_request
    from schemas.requests import ChatCompletionRequest

    body = ChatCompletionRequest(model="m", messages=[])
    kept = plan_request(body, request_id="r", prompt="p", max_tokens=4, keep_special_tokens=True)
    assert kept.sampling.skip_special_tokens is False
    assert plan_request(body, request_id="r", prompt="p", max_tokens=4).sampling.skip_special_tokens is None
    asked = ChatCompletionRequest(model="m", messages=[], skip_special_tokens=True)
    assert plan_request(
        asked, request_id="r", prompt="p", max_tokens=4, keep_special_tokens=True
    ).sampling.skip_special_tokens
