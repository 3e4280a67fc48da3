"""The stand-ins' "language model": a tokenizer and a reply that repeats the last user turn."""

from __future__ import annotations

import json
import os
import random

from tokenizers import Tokenizer

USER_MARK = "<|user|>\n"
END_MARK = "<|end|>"
OPENINGS = ("You said: ", "I heard: ", "Echo: ", "Repeating: ")


class StandInTokenizer:
    """The project's demo tokenizer (tokenizer.json + tokenizer_config.json)."""

    def __init__(self, directory: str) -> None:
        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "tokenizer_config.json")) as file:
            config = json.load(file)
        self.eos_id: int = self.tokenizer.token_to_id(config["eos_token"])
        self.pad_id: int = self.tokenizer.token_to_id(config["pad_token"])
        self.space_id: int = self.tokenizer.token_to_id("Ġ")

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())


def reply_for(prompt: str, temperature: float, seed: int | None) -> str:
    """The last user turn of a chat prompt (or the raw prompt) repeated back."""
    start = prompt.rfind(USER_MARK)
    if start == -1:
        said = prompt.strip()
    else:
        said = prompt[start + len(USER_MARK) :]
        end = said.find(END_MARK)
        said = (said[:end] if end != -1 else said).strip()
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


def resolve(model_dir: str, path: str) -> str:
    """A path from a model's configuration, relative to the model's directory."""
    return os.path.normpath(os.path.join(model_dir, path))
