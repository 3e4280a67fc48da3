"""The engine-neutral vocabulary of a generation: what is asked (GenerationRequest with its
Sampling), what comes back (Delta, TokenLogprob, ToolCall), and what the tokenizer offers."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class Sampling:
    """How to sample, under the API's names; None leaves a field to the backend's default.
    Each backend adapter maps these through one name table of its own."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    min_tokens: int | None = None
    ignore_eos: bool | None = None
    skip_special_tokens: bool | None = None
    include_stop_str_in_output: bool | None = None
    stop_token_ids: list[int] | None = None
    logit_bias: dict[int, float] | None = None

    def given(self) -> dict[str, Any]:
        """The fields that are set, by name."""
        return {name: value for name in SAMPLING_FIELDS if (value := getattr(self, name)) is not None}


SAMPLING_FIELDS = tuple(spec.name for spec in fields(Sampling))


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One sequence to generate, whatever the API or backend; complete once planned (frozen:
    a choice's copy is made with dataclasses.replace)."""

    request_id: str
    prompt: str
    stream: bool
    max_tokens: int
    sampling: Sampling = field(default_factory=lambda: Sampling())
    stop: list[str] = field(default_factory=list)  # stop strings: the gateway applies them where the model cannot
    guided: GuidedDecoding | None = None
    logprobs: int | None = None  # alternatives per token; 0: the sampled token's logprob only
    logprobs_param: str = "logprobs"  # the request field that set `logprobs`, named when it is refused
    sampled_in_top: bool = False  # the API lists the sampled token among the alternatives (completions)
    cumulative_logprob: bool = False  # the sequence's total logprob (to rank best_of candidates)
    images: list[bytes] | None = None  # base64, in the order the prompt's placeholders name them
    lora_name: str | None = None  # a LoRA adapter of the model
    lora_path: str | None = None  # where its files are, as the gateway sees them
    routing_key: str | None = None  # with --routing prefix: what picks the Triton (see gateway/triton/routing.py)


@dataclass(frozen=True, slots=True)
class GuidedDecoding:
    """A constraint on the output: any JSON object, or JSON matching `schema`."""

    kind: Literal["json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    param: str = "response_format"  # the request field that asked for it


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its text, logprob, and the most likely alternatives (best first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model made, or a part of one as it streams: its index among the
    choice's calls, id, name, and arguments as a JSON string. A call's first part carries its id
    and name; later parts (id and name empty) carry more of its arguments."""

    index: int
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Delta:
    """What one Triton response adds. `finish_reason` is set on the last delta only and
    is already an OpenAI value. Token counts are None when the model does not report them;
    `completion_tokens` counts the tokens of this delta. `reasoning` is the part of the model's
    text that is thinking rather than answer (set by the reasoning stage, which leaves the
    answer in `text`), `reasoning_tokens` how many of this delta's tokens it took."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: list[TokenLogprob] | None = None
    cumulative_logprob: float | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str = ""
    reasoning_tokens: int | None = None


class TokenizerTools(Protocol):
    """What adapters and usage need of a model's tokenizer."""

    def count_tokens(self, text: str) -> int: ...

    def prompt_tokens(self, text: str) -> int:
        """The tokens the model's backend makes of the text input `text`."""
        ...

    def vocab_size(self) -> int: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def text_input(self, prompt: str) -> str:
        """A rendered chat prompt as the model's text input (no BOS text that the backend's
        own tokenization would add once more)."""
        ...

    def decode_prompt(self, token_ids: list[int]) -> str:
        """A token-id prompt as the model's text input."""
        ...

    def round_trip(self, text: str) -> str:
        """`text` encoded and decoded again, special tokens dropped (as a backend that
        echoes the prompt through its detokenizer would show it)."""
        ...

    def token_pieces(self, text: str) -> list[str]:
        """`text` cut where its tokens start: one piece per token, joined they are `text`."""
        ...
