"""Prompt integrity: client text must not smuggle the model's control tokens into a chat prompt.

The chat template renders a prompt as text, and the backend tokenizes that text with special
tokens parsed, so `<|eot_id|>` typed by a client becomes the real end-of-turn token: a forged
turn, role or tool call. Every client string that reaches the template is searched for the
tokenizer's special tokens (`--special-tokens-in-content reject`), and `chat_template_kwargs`
may not set the variables the gateway and the renderer set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from gateway.errors import InvalidRequest
from schemas.requests import ChatMessage, TextPart

# Names chat_template_kwargs may not use. transformers' apply_chat_template takes a kwarg of its own
# name as that parameter (tokenize=True would return ids), passes the rest to the template over the
# tokenizer's special tokens (bos_token, …) and over the Jinja globals (raise_exception, …).
RESERVED_TEMPLATE_VARIABLES = frozenset(
    {
        # apply_chat_template's own parameters
        "conversation",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "sanitize_control_tokens",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
        "tokenizer",
        # what the renderer passes to the template
        "messages",
        # the globals every template sees (transformers' helpers, then Jinja's)
        "raise_exception",
        "strftime_now",
        "dict",
        "namespace",
        "range",
        "lipsum",
        "cycler",
        "joiner",
        # read instead of `tools` by Llama 3.1+ templates: tools the gateway never checked
        "custom_tools",
    }
)
RESERVED_PREFIXES = ("_", "return_")
RESERVED_SUFFIXES = ("_token",)  # bos_token, eos_token, image_token, …: special-token attributes


def reserved_template_variable(name: str) -> bool:
    return name in RESERVED_TEMPLATE_VARIABLES or name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES)


def check_template_variables(options: dict[str, Any] | None, tokenizer_names: frozenset[str] = frozenset()) -> None:
    """Refuse chat_template_kwargs that would set a reserved name (or one of the tokenizer's
    special-token attributes, `tokenizer_names`)."""
    for key in options or {}:
        if reserved_template_variable(key) or key in tokenizer_names:
            raise InvalidRequest(
                f"chat_template_kwargs may not set '{key}': the gateway or the template renderer sets it.",
                param=f"chat_template_kwargs.{key}",
                code="reserved_template_variable",
            )


class ControlTokens:
    """The texts of one tokenizer's special tokens, with one compiled matcher for all of them."""

    __slots__ = ("_pattern", "attributes", "longest", "tokens")

    def __init__(self, tokens: Iterable[str], attributes: Iterable[str] = ()) -> None:
        # Whitespace tokens cannot forge a turn, and are everywhere in ordinary text.
        self.tokens = frozenset(token for token in tokens if token and not token.isspace())
        self.longest = max(map(len, self.tokens), default=0)
        self.attributes = frozenset(attributes)  # special-token attribute names: bos_token, …
        self._pattern = re.compile(_trie_pattern(self.tokens)) if self.tokens else None

    @classmethod
    def of(cls, tokenizer: Any) -> ControlTokens:
        """Special tokens as transformers 5 has them: the named and extra ones, the added tokens
        marked special, and any the tokenizer lists as `chat_control_tokens`."""
        tokens = {str(token) for token in getattr(tokenizer, "all_special_tokens", ())}
        added = getattr(tokenizer, "added_tokens_decoder", {}).values()
        tokens.update(str(token) for token in added if getattr(token, "special", False))
        tokens.update(str(token) for token in getattr(tokenizer, "chat_control_tokens", None) or ())
        names = {*getattr(tokenizer, "SPECIAL_TOKENS_ATTRIBUTES", ()), *getattr(tokenizer, "special_tokens_map", {})}
        return cls(tokens, names)

    def search(self, text: str) -> tuple[int, str] | None:
        """Where the first special token in `text` starts, and which one (the longest there)."""
        match = self._pattern.search(text) if self._pattern is not None else None
        return None if match is None else (match.start(), match.group())


def _trie_pattern(tokens: Iterable[str]) -> str:
    """One regex for `tokens`, shaped as their trie. A flat alternation tries every token at each
    place a token could start (Llama 3 has 256, all starting "<|": 25-50x slower on text full of
    "<|"); the trie tries one character at a time. Greedy optional groups make the longest win."""
    trie: dict[str, Any] = {}
    for token in tokens:
        node = trie
        for char in token:
            node = node.setdefault(char, {})
        node[""] = {}  # a token ends here

    def emit(node: dict[str, Any]) -> str:
        branches = []
        for char, child in sorted(node.items()):
            if not char:
                continue
            run = char
            while len(child) == 1 and "" not in child:  # a chain of single children: one literal
                (char, child), *_ = child.items()
                run += char
            branches.append(re.escape(run) + emit(child))
        if not branches:
            return ""
        alternatives = "|".join(branches)
        if "" in node:
            return f"(?:{alternatives})?"
        return alternatives if len(branches) == 1 else f"(?:{alternatives})"

    return emit(trie)


def check_template_inputs(
    tokens: ControlTokens,
    request_messages: Sequence[ChatMessage],
    template_messages: Sequence[dict[str, Any]],
    template_tools: Sequence[dict[str, Any]] | None,
    template_kwargs: dict[str, Any] | None,
) -> None:
    """Refuse (400 `special_token_in_content`) client text for the template that holds a special token."""
    texts = _template_texts(request_messages, template_messages, template_tools, template_kwargs, tokens.longest)
    for param, text, offset in texts:
        found = tokens.search(text)
        if found is not None:
            position, token = found
            raise InvalidRequest(
                f"{param} contains {token!r} (at character {offset + position}), the text of one of the "
                "model's special tokens: in the prompt it would be that control token, not text.",
                param=param,
                code="special_token_in_content",
            )


def _template_texts(
    request_messages: Sequence[ChatMessage],
    template_messages: Sequence[dict[str, Any]],
    template_tools: Sequence[dict[str, Any]] | None,
    template_kwargs: dict[str, Any] | None,
    reach: int,
) -> Iterator[tuple[str, str, int]]:
    """(param, text, offset of text in that field) for every client string the template gets.
    Content comes from the request (for part indices); tool calls from the template messages,
    whose arguments are parsed JSON (a string's \\u003c escapes are decoded there)."""
    for i, (message, entry) in enumerate(zip(request_messages, template_messages, strict=True)):
        where = f"messages[{i}]"
        if isinstance(message.content, str):
            yield f"{where}.content", message.content, 0
        elif message.content:
            yield from _part_texts(where, message.content, reach)
        if message.name is not None:
            yield f"{where}.name", message.name, 0
        if message.tool_call_id is not None:
            yield f"{where}.tool_call_id", message.tool_call_id, 0
        for j, call in enumerate(entry.get("tool_calls") or ()):
            yield from _nested_texts(call, f"{where}.tool_calls[{j}]")
    for k, tool in enumerate(template_tools or ()):
        yield from _nested_texts(tool["function"], f"tools[{k}].function")
    for key, value in (template_kwargs or {}).items():  # the keys are variable names, never rendered
        yield from _nested_texts(value, f"chat_template_kwargs.{key}")


def _part_texts(where: str, parts: Sequence[Any], reach: int) -> Iterator[tuple[str, str, int]]:
    """Each text part, then the joins between them: a template may write consecutive parts
    together, so a token split over parts is looked for around each join (after the parts, so a
    match there spans a join)."""
    texts = [(j, part.text) for j, part in enumerate(parts) if isinstance(part, TextPart)]
    for j, text in texts:
        yield f"{where}.content[{j}].text", text, 0
    if len(texts) < 2 or reach < 2:
        return
    joined = "".join(text for _, text in texts)
    join = 0
    for _, text in texts[:-1]:
        join += len(text)
        start = max(0, join - reach)
        yield f"{where}.content", joined[start : join + reach], start


def _nested_texts(value: Any, path: str) -> Iterator[tuple[str, str, int]]:
    """The strings in a JSON value, in document order (keys included: templates write objects
    out with tojson). A stack, not recursion: msgspec decodes JSON nested almost as deep as
    Python's recursion limit, deeper than a recursive walk inside a request handler could go."""
    stack = [(path, value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value, 0
        elif isinstance(value, dict):
            members = []
            for key, item in value.items():
                if isinstance(key, str):
                    members.append((f"{path}.{key}", key))
                members.append((f"{path}.{key}", item))
            stack.extend(reversed(members))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{index}]", item) for index, item in enumerate(value)]))
