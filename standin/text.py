"""The stand-ins' "language model": a tokenizer and a reply that repeats the last user turn."""

from __future__ import annotations

import json
import os
import random
import re
from typing import Any

from tokenizers import Tokenizer

USER_MARK = "<|user|>\n"
TOOL_MARK = "<|tool|>\n"
TOOL_REPLY = "The tool said: "  # the answer to a prompt that ends with a tool result
END_MARK = "<|end|>"
OPENINGS = ("You said: ", "I heard: ", "Echo: ", "Repeating: ")
RAW_PREFIX = "/raw "  # a user turn starting with this is repeated verbatim, without an opening
FAIL_PREFIX = "/fail"  # a user turn starting with this makes the vLLM stand-in raise mid-generation
PROMPT_REPORT = "/prompt-ids"  # a user turn of just this: the engines reply with what their prompt held

_TURN_END = re.compile(re.escape(END_MARK) + r"\n(?=<\|(?:system|user|assistant|tool)\|>\n|$)")
_SPECIAL_TEXT = re.compile(r"(<\|[a-z_]+\|>)")  # the demo vocabulary's special tokens look like this


class StandInTokenizer:
    """The project's demo tokenizer (tokenizer.json + tokenizer_config.json)."""

    def __init__(self, directory: str) -> None:
        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "tokenizer_config.json")) as file:
            config = json.load(file)
        self.bos_id: int = self.tokenizer.token_to_id(config["bos_token"])
        self.eos_id: int = self.tokenizer.token_to_id(config["eos_token"])
        self.pad_id: int = self.tokenizer.token_to_id(config["pad_token"])
        self.space_id: int = self.tokenizer.token_to_id("Ġ")

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """`add_special_tokens=True` is how vLLM's engine and TensorRT-LLM's `preprocessing`
        (by default) tokenize a prompt: a BOS in front, on top of any BOS text already in `text`."""
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_reply(self, text: str) -> list[int]:
        """A scripted reply as ordinary tokens: text that spells a special token (the demo EOS
        is `<|end|>`, which is also a harmony marker) is written out, not generated as that token,
        so a reply comes back verbatim and ends only where the stand-in ends it."""
        ids: list[int] = []
        for piece in _SPECIAL_TEXT.split(text):
            if piece:  # "<" and "|end|>" on their own match no special token
                parts = [piece[:1], piece[1:]] if _SPECIAL_TEXT.fullmatch(piece) else [piece]
                ids += [token for part in parts for token in self.encode(part)]
        return ids

    def prompt_report(self, prompt_ids: list[int]) -> str:
        """The reply to PROMPT_REPORT: how many tokens the engine got, and how many of them BOS."""
        return f"{len(prompt_ids)} tokens, {prompt_ids.count(self.bos_id)} BOS"

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())


def reply_for(prompt: str, temperature: float, seed: int | None) -> str:
    """The last user turn of a chat prompt (or the raw prompt) repeated back; after a tool
    result, that result (as a model answers once its tool call has been run, so that an agent
    loop ends)."""
    result = last_tool_result(prompt)
    if result is not None:
        return TOOL_REPLY + result
    said = last_user_turn(prompt)
    if said.startswith(RAW_PREFIX):  # tests script the exact output this way
        return said[len(RAW_PREFIX) :]
    opening = OPENINGS[0]
    if temperature > 0:
        opening = random.Random(seed).choice(OPENINGS)
    return opening + said


def reply_token(reply_ids: list[int], position: int, eos_allowed: bool, eos_id: int, filler_id: int) -> int:
    """Token number `position` of an endless reply: the reply, then EOS (or, where EOS is
    not allowed yet, a filler token and the reply again)."""
    cycle = len(reply_ids) + 1
    offset = position % cycle
    if offset == len(reply_ids):
        return eos_id if eos_allowed else filler_id
    return reply_ids[offset]


def token_logprob(token_id: int) -> float:
    """The TensorRT-LLM stand-in's logprob of a generated token: derived from its id, and a
    multiple of 1/16, so it is exact in FP32."""
    return -((token_id % 16) + 1) / 16


def resolve(model_dir: str, path: str) -> str:
    """A path from a model's configuration, relative to the model's directory."""
    return os.path.normpath(os.path.join(model_dir, path))


def json_instance(schema: dict[str, Any], said: str) -> Any:
    """A small value that satisfies `schema` (what guided decoding would force), carrying
    the user's words in its strings."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return json_instance(schema[combinator][0], said)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        names = schema.get("required", list(properties))
        return {name: json_instance(properties.get(name, {"type": "string"}), said) for name in names}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [json_instance(schema.get("items", {"type": "string"}), said) for _ in range(count)]
    if kind == "string":
        return said[: int(schema.get("maxLength", len(said)))] if said else "text"
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    return None


def guided_reply(spec: dict[str, Any], said: str) -> str:
    """The reply under guided decoding (json, json_object or choice)."""
    if "json" in spec:
        schema = spec["json"] if isinstance(spec["json"], dict) else json.loads(spec["json"])
        return json.dumps(json_instance(schema, said))
    if spec.get("json_object"):
        return json.dumps({"said": said})
    if spec.get("choice"):
        return str(spec["choice"][0])
    raise ValueError("the stand-in model supports json, json_object and choice constraints")


def guide_spec(guide_type: str, guide: str) -> dict[str, Any]:
    """TensorRT-LLM's guided decoding (`guided_decoding_guide_type` and `_guide`) as the
    constraint `guided_reply` takes: `json_schema` with a schema, `json` for any JSON object."""
    if guide_type == "json_schema":
        return {"json": guide}
    if guide_type == "json":
        return {"json_object": True}
    raise ValueError(f"the stand-in model supports the json and json_schema guide types, not '{guide_type}'")


def asks_for_prompt_report(prompt: str) -> bool:
    """Whether the last user turn is PROMPT_REPORT: in a rendered chat prompt, or in one
    decoded from token ids without its special tokens (the token-level engine sees that)."""
    return last_user_turn(prompt) == PROMPT_REPORT or prompt.split()[-1:] == [PROMPT_REPORT]


def last_tool_result(prompt: str) -> str | None:
    """The tool turn the prompt ends with (no user turn after it), if it does."""
    start = prompt.rfind(TOOL_MARK)
    if start == -1 or prompt.rfind(USER_MARK) > start:
        return None
    said = prompt[start + len(TOOL_MARK) :]
    end = _TURN_END.search(said)
    return (said[: end.start()] if end else said).strip()


def last_user_turn(prompt: str) -> str:
    start = prompt.rfind(USER_MARK)
    if start == -1:
        return prompt.strip()
    said = prompt[start + len(USER_MARK) :]
    end = _TURN_END.search(said)  # <|end|> inside the turn's text (harmony replies) is text
    return (said[: end.start()] if end else said).strip()
