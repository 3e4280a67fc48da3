"""response_format through guided decoding, with the schema checked first and strict output
validated at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from tests.conftest import sse_events, user

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True}}


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", ["vllm_model", "vllm_guided_legacy", "ensemble_guided"])
def test_json_schema_output_matches_the_schema(sdk: openai.OpenAI, model: str) -> None:
    reply = sdk.chat.completions.create(
        model=model, messages=user("Paris"), response_format=JSON_SCHEMA, max_tokens=60, temperature=0
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), SCHEMA)
    chunks = list(
        sdk.chat.completions.create(
            model=model, messages=user("Paris"), response_format=JSON_SCHEMA, max_tokens=60, temperature=0, stream=True
        )
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == reply.choices[0].message.content
    assert json.loads(streamed) == {"city": "Paris", "days": 1}  # the stand-ins fill the schema from the prompt


@pytest.mark.parametrize("model", ["vllm_model", "ensemble_guided"])
def test_json_object(sdk: openai.OpenAI, model: str) -> None:
    json_object = {"type": "json_object"}
    reply = sdk.chat.completions.create(model=model, messages=user("hello"), response_format=json_object, max_tokens=60)
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    chunks = sdk.chat.completions.create(
        model=model, messages=user("hello"), response_format=json_object, max_tokens=60, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert isinstance(json.loads(streamed), dict)
    completion = sdk.completions.create(
        model=model, prompt="hello", extra_body={"response_format": json_object}, max_tokens=60
    )
    assert isinstance(json.loads(completion.choices[0].text), dict)


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [({"type": "objekt"}, "objekt"), ({"type": "object", "properties": {"a": {"minimum": "one"}}}, "properties/a")],
)
def test_invalid_schema_is_a_400_naming_the_field(sdk: openai.OpenAI, schema: dict, fragment: str) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="vllm_model", messages=user("x"), response_format=bad)
    assert caught.value.param == "response_format.json_schema.schema"
    assert fragment in caught.value.message


def test_missing_schema_and_unknown_type_are_400s(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="vllm_model",
            messages=user("x"),
            response_format={"type": "json_schema", "json_schema": {"name": "x"}},
        )
    assert caught.value.param == "response_format.json_schema.schema"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="vllm_model", messages=user("x"), response_format={"type": "xml"})
    assert caught.value.param == "response_format.type"


@pytest.mark.parametrize("model", ["vllm_model", "ensemble_guided"])
async def test_strict_output_that_breaks_the_schema_is_reported(client, model: str) -> None:  # type: ignore[no-untyped-def]
    # Cut short by max_tokens, the JSON is incomplete: a strict request must not pass it on.
    body = {"model": model, "messages": user("Paris"), "response_format": JSON_SCHEMA, "max_tokens": 3}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "structured_output_violation"
    events = await sse_events(await client.post("/v1/chat/completions", json={**body, "stream": True}))
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "structured_output_violation"
    not_strict = {**body, "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}}
    assert (await client.post("/v1/chat/completions", json=not_strict)).status == 200


async def test_a_deployment_on_the_other_key_rejects_the_request_clearly(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from gateway.app import create_app

    # Without --structured-outputs-key, an r25.01-r25.10 model is sent `structured_outputs`.
    client = await aiohttp_client(create_app(replace(settings, structured_outputs_key=())))
    body = {"model": "vllm_guided_legacy", "messages": user("x"), "response_format": JSON_SCHEMA}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_sampling_parameters" and "lora_name" not in error["message"]


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls", "llmapi"])
def test_trtllm_models_without_guide_inputs_refuse_response_format(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=user("x"), response_format=JSON_SCHEMA)
    assert caught.value.param == "response_format"
