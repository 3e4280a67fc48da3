"""Response bodies: completions, stream chunks, usage and the model list."""

from __future__ import annotations

import msgspec


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int


class Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # Only for a model whose reasoning the gateway parses (--reasoning-parser).
    completion_tokens_details: CompletionTokensDetails | None = None


# -- logprobs ------------------------------------------------------------------------


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(msgspec.Struct):
    content: list[ChatTokenLogprob] | None


class CompletionLogprobs(msgspec.Struct):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


# -- chat ----------------------------------------------------------------------------


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str


class ToolCallMessage(msgspec.Struct):
    id: str
    function: FunctionCall
    type: str = "function"


class AssistantMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """`role` and `content` always appear (content may be null); `tool_calls` only when made."""

    role: str
    content: str | None
    tool_calls: list[ToolCallMessage] | None = None
    # The model's thinking, under both names clients read: `reasoning_content` (DeepSeek's,
    # LiteLLM's, LangChain's ChatDeepSeek) and `reasoning` (vLLM's, OpenRouter's).
    reasoning_content: str | None = None
    reasoning: str | None = None


class FunctionCallDelta(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class ChatChoice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None


class ChatDelta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None  # both names, as in AssistantMessage
    reasoning: str | None = None


class ChatChunkChoice(msgspec.Struct):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: ChatLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One SSE chunk. `usage` is left out except on the include_usage chunk."""

    id: str
    object: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


# -- text completions ----------------------------------------------------------------


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None


class CompletionChunk(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One SSE chunk of a text completion (`object` is "text_completion" here too)."""

    id: str
    object: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# -- models --------------------------------------------------------------------------


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "triton"
    object: str = "model"
    parent: str | None = None  # the base model of a LoRA adapter


class ModelStatus(msgspec.Struct):
    id: str
    status: str  # "loaded" or "unloaded"
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


# -- embeddings ----------------------------------------------------------------------


class Embedding(msgspec.Struct):
    index: int
    embedding: list[float] | str  # floats, or base64 of little-endian float32
    object: str = "embedding"


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None
    object: str = "list"


class TokenizeResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    count: int
    max_model_len: int | None
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(msgspec.Struct):
    prompt: str


class TritonVersion(msgspec.Struct):
    version: str
    extensions: list[str]  # (its server id, `name` in Triton's metadata, is not shown)


class VersionResponse(msgspec.Struct):
    version: str
    triton: TritonVersion | None  # None while Triton does not answer
