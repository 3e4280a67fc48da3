"""The clients people point at the gateway, each through the same round against a real
tritonserver and `python -m gateway`: chat, streaming with usage, completions, a tool call and
an error. The openai Python SDK (sync and async), LangChain's ChatOpenAI (invoke, stream, tools,
structured output), LiteLLM as a client library, and the openai Node SDK (installed from npm)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import litellm
import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.conftest import ROOT

MODEL = "vllm_model"  # hermes tool calls in the session's gateway
HELLO = [{"role": "user", "content": "Hello there"}]
CALL = '/raw <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
NODE_CLIENTS = ROOT / ".node-clients"  # the openai Node SDK, installed here by the first run


def test_openai_python_sync(gateway_process: str) -> None:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="x", max_retries=0) as client:
        chat = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, max_tokens=40)  # type: ignore[arg-type]
        assert chat.choices[0].message.content == "You said: Hello there"
        text, usage = "", None
        for chunk in client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        ):
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
            usage = chunk.usage or usage
        assert text == "You said: Hello there" and usage is not None and usage.completion_tokens > 0
        completion = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
        assert completion.choices[0].text
        called = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": CALL}],
            tools=[WEATHER],
            max_tokens=80,  # type: ignore[list-item]
        )
        [made] = called.choices[0].message.tool_calls or []
        assert made.function.name == "get_weather" and json.loads(made.function.arguments) == {"city": "Oslo"}
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="no_such_model", messages=HELLO)  # type: ignore[arg-type]
        assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]


async def test_openai_python_async(gateway_process: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway_process}/v1", api_key="x", max_retries=0) as client:
        chat = await client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, max_tokens=40)  # type: ignore[arg-type]
        assert chat.choices[0].message.content == "You said: Hello there"
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        text, usage = "", None
        async for chunk in stream:
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
            usage = chunk.usage or usage
        assert text == "You said: Hello there" and usage is not None
        completion = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
        assert completion.choices[0].text
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model=MODEL, messages=HELLO, temperature=7)  # type: ignore[arg-type]
        assert refused.value.body["param"] == "temperature"  # type: ignore[index]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


class Answer(BaseModel):
    city: str
    days: int


def test_langchain_chat_openai(gateway_process: str) -> None:
    llm = ChatOpenAI(model=MODEL, base_url=f"{gateway_process}/v1", api_key="x", temperature=0, max_tokens=60)  # type: ignore[arg-type]
    assert llm.invoke("Hello there").content == "You said: Hello there"
    streamed = "".join(str(chunk.content) for chunk in llm.stream("Hello there"))
    assert streamed == "You said: Hello there"
    called = llm.bind_tools([get_weather]).invoke(CALL)
    assert [(call["name"], call["args"]) for call in called.tool_calls] == [("get_weather", {"city": "Oslo"})]
    structured = llm.with_structured_output(Answer, method="json_schema").invoke("Weather in Oslo for 2 days?")
    assert isinstance(structured, Answer)
    with pytest.raises(openai.NotFoundError):
        ChatOpenAI(model="no_such_model", base_url=f"{gateway_process}/v1", api_key="x", max_retries=0).invoke("hi")  # type: ignore[arg-type]


def test_litellm_as_a_client(gateway_process: str) -> None:
    route: dict[str, Any] = {"model": f"openai/{MODEL}", "api_base": f"{gateway_process}/v1", "api_key": "x"}
    chat = litellm.completion(messages=HELLO, temperature=0, max_tokens=40, **route)
    assert chat.choices[0].message.content == "You said: Hello there"
    chunks = list(
        litellm.completion(messages=HELLO, temperature=0, stream=True, stream_options={"include_usage": True}, **route)
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == "You said: Hello there"
    assert any(getattr(chunk, "usage", None) for chunk in chunks)
    text = litellm.text_completion(prompt="Once upon a time", max_tokens=8, temperature=0, **route)
    assert text.choices[0].text
    called = litellm.completion(messages=[{"role": "user", "content": CALL}], tools=[WEATHER], max_tokens=80, **route)
    [made] = called.choices[0].message.tool_calls
    assert made.function.name == "get_weather" and json.loads(made.function.arguments) == {"city": "Oslo"}
    with pytest.raises(litellm.NotFoundError):
        litellm.completion(messages=HELLO, num_retries=0, **{**route, "model": "openai/no_such_model"})


NODE_ROUND = r"""
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.argv[2] + "/v1", apiKey: "x", maxRetries: 0 });
const messages = [{ role: "user", content: "Hello there" }];
const out = {};
const chat = await client.chat.completions.create({ model: "vllm_model", messages, temperature: 0, max_tokens: 40 });
out.chat = chat.choices[0].message.content;
const stream = await client.chat.completions.create({
  model: "vllm_model", messages, temperature: 0, stream: true, stream_options: { include_usage: true },
});
out.streamed = "";
for await (const chunk of stream) {
  for (const choice of chunk.choices) out.streamed += choice.delta.content ?? "";
  if (chunk.usage) out.usage = chunk.usage.completion_tokens;
}
const completion = await client.completions.create({ model: "vllm_model", prompt: "Once upon a time", max_tokens: 8 });
out.completion = completion.choices[0].text;
const called = await client.chat.completions.create({
  model: "vllm_model", messages: [{ role: "user", content: process.argv[3] }], tools: [JSON.parse(process.argv[4])], max_tokens: 80,
});
out.call = called.choices[0].message.tool_calls[0].function;
try {
  await client.chat.completions.create({ model: "no_such_model", messages });
} catch (error) {
  out.error = { status: error.status, code: error.code };
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    """The openai package from npm, installed once into .node-clients (npm is a system tool
    that `make test` checks for)."""
    npm = shutil.which("npm")
    assert npm is not None and shutil.which("node"), "node and npm are needed: apt-get install nodejs npm"
    if not (NODE_CLIENTS / "node_modules" / "openai").is_dir():
        NODE_CLIENTS.mkdir(exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_CLIENTS), "openai", "--no-audit", "--no-fund", "--silent"],
            check=True,
            timeout=300,
        )
    return NODE_CLIENTS


def test_openai_node_sdk(gateway_process: str, node_sdk: Path) -> None:
    script = node_sdk / "round.mjs"
    script.write_text(NODE_ROUND)
    result = subprocess.run(
        ["node", str(script), gateway_process, CALL, json.dumps(WEATHER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=node_sdk,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["chat"] == out["streamed"] == "You said: Hello there" and out["usage"] > 0
    assert out["completion"]
    assert out["call"]["name"] == "get_weather" and json.loads(out["call"]["arguments"]) == {"city": "Oslo"}
    assert out["error"] == {"status": 404, "code": "model_not_found"}
