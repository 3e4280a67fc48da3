"""Build the demo tokenizer that ships in this folder.

A small byte-level BPE trained on the text below, with the special tokens and the
chat template the stand-in models understand. Like Llama 3's, it adds its BOS token on
every encode with special tokens (and its chat template writes the BOS text too), so a
serving path that tokenizes a rendered chat prompt with special tokens doubles the BOS. Run it again after changing the corpus
or the template:  .venv/bin/python standin/tokenizer/build.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = Path(__file__).resolve().parent

SPECIAL_TOKENS = [
    "<|pad|>",
    "<|begin|>",
    "<|end|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|tool|>",
]

# Roles outside system/user/assistant/tool are rendered as system turns. Content is a string,
# or a list of parts where {"type": "image"} becomes the <|image|> placeholder.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = message['role'] if message['role'] in ['system', 'user', 'assistant', 'tool'] "
    "else 'system' %}"
    "<|{{ role }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|image|>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CORPUS = """
The gateway speaks the OpenAI HTTP API to its clients and streams every request to a
Triton Inference Server over gRPC. You said something, and the stand-in model answers by
repeating it back, one token at a time, so that streaming, usage and finish reasons can be
seen without a GPU. Hello! How are you today? I am fine, thank you. What is the weather
like in Paris, Berlin, Tokyo or New York? Tell me a story about a small robot that learned
to write poems. Once upon a time there was a quiet village near the sea. Please count from
one to ten: one, two, three, four, five, six, seven, eight, nine, ten. The quick brown fox
jumps over the lazy dog. Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols + - * / = ( )
[ ] { } < > : ; , . ! ? " ' @ # $ % & _ | ~ ^ ` appear in code and JSON: {"name": "value"}.
Café, naïve, résumé, straße, 東京, 你好, こんにちは, 😀 are words with multi-byte characters.
Machine learning models generate text. Large language models predict the next token.
The assistant replies to the user; the system sets the rules; a tool returns its result.
"""

VOCAB_SIZE = 1024


def build() -> None:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    bos = "<|begin|>"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    tokenizer.save(str(HERE / "tokenizer.json"))

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin|>",
        "eos_token": "<|end|>",
        "pad_token": "<|pad|>",
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (HERE / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (HERE / "special_tokens_map.json").write_text(
        json.dumps(
            {"bos_token": "<|begin|>", "eos_token": "<|end|>", "pad_token": "<|pad|>"},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    build()
