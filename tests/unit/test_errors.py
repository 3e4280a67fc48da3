from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gateway.errors import BackendUnavailable, InvalidRequest, ModelNotFound, validation_error
from schemas.requests import ChatCompletionRequest

DECODER = msgspec.json.Decoder(ChatCompletionRequest)


def param_of(body: dict[str, Any]) -> str | None:
    with pytest.raises(msgspec.ValidationError) as caught:
        DECODER.decode(json.dumps(body))
    return validation_error(caught.value).param


def test_param_is_the_path_of_the_bad_field() -> None:
    ok = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert param_of({**ok, "max_tokens": "x"}) == "max_tokens"
    assert param_of({"messages": ok["messages"]}) == "model"
    assert param_of({**ok, "messages": [{"content": "x"}]}) == "messages[0].role"
    assert param_of({**ok, "messages": [ok["messages"][0], {"role": "user", "content": [{"type": "text"}]}]}) == (
        "messages[1].content[0].text"
    )
    assert param_of({**ok, "stream_options": {"include_usage": 3}}) == "stream_options.include_usage"


def test_message_names_the_field_and_the_problem() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        DECODER.decode(b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5}')
    error = validation_error(caught.value)
    assert error.status == 400
    assert "temperature" in error.message and "<= 2.0" in error.message


def test_envelope_shape() -> None:
    body = json.loads(InvalidRequest("bad", param="x").to_json())
    assert body == {"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}}
    body = json.loads(ModelNotFound("m").to_json())
    assert body["error"]["code"] == "model_not_found" and ModelNotFound("m").status == 404
    assert json.loads(BackendUnavailable("down").to_json())["error"]["type"] == "server_error"
