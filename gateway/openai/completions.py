"""Text completions without a web framework: `plan_completion` turns a decoded request body
into complete generation requests (one per prompt and choice, best_of candidates included), and
`CompletionStreamFormatter` / `completion_response` render the choices' deltas."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from gateway.errors import BadGateway, InvalidRequest
from gateway.generation import Delta, TokenizerTools
from gateway.model_info import ModelInfo
from gateway.openai.choices import Choice, plan_choices
from gateway.openai.context import GatewayState
from gateway.openai.logprobs import completion_logprobs
from gateway.openai.pipeline import StageFactory
from gateway.openai.resolve import resolve_target
from gateway.openai.sampling import check_common, check_room, generation_request, unsupported
from gateway.openai.stops import stop_stage
from gateway.sse import ChunkStream
from gateway.structured import StructuredOutput
from gateway.triton.routing import RAW_PROMPT_START, routing_key
from schemas.requests import CompletionRequest, StreamOptions
from schemas.responses import Completion, CompletionChoice, CompletionChunk, Usage

_OBJECT = "text_completion"
MAX_PROMPTS = 64


def prompt_texts(body: CompletionRequest, tokenizer: TokenizerTools | None) -> list[str]:
    """The prompts of a request: a string, strings, token ids, or lists of token ids (the
    backends take text, so token ids are decoded with the model's tokenizer; a leading BOS id
    is left to a backend whose tokenization adds it)."""
    prompt = body.prompt
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise InvalidRequest("prompt must not be empty.", param="prompt")
    if len(prompt) > MAX_PROMPTS and not all(isinstance(item, int) for item in prompt):
        raise InvalidRequest(f"A request may hold at most {MAX_PROMPTS} prompts.", param="prompt")
    if all(isinstance(item, str) for item in prompt):
        return [str(item) for item in prompt]
    if all(isinstance(item, int) for item in prompt):
        return [_decode(prompt, tokenizer, "prompt")]  # type: ignore[arg-type]
    if all(isinstance(item, list) for item in prompt):
        return [_decode(item, tokenizer, f"prompt[{i}]") for i, item in enumerate(prompt)]  # type: ignore[arg-type]
    raise InvalidRequest("prompt mixes strings and token ids.", param="prompt")


def _decode(token_ids: list[int], tokenizer: TokenizerTools | None, param: str) -> str:
    if tokenizer is None:
        raise InvalidRequest("Token-id prompts need the model's tokenizer (--tokenizer).", param=param)
    if not token_ids:
        raise InvalidRequest("A token-id prompt must not be empty.", param=param)
    vocab_size = tokenizer.vocab_size()
    if any(not 0 <= token < vocab_size for token in token_ids):
        raise InvalidRequest(f"Token ids must be in [0, {vocab_size}).", param=param)
    return tokenizer.decode_prompt(token_ids)


def check_completion(body: CompletionRequest) -> None:
    check_common(body)
    if body.suffix is not None:
        raise unsupported("suffix", "suffix (insertion)")
    if body.best_of is not None:
        if body.best_of < body.n:
            raise InvalidRequest("best_of must be at least n.", param="best_of")
        if body.best_of > body.n and body.stream:
            raise InvalidRequest("best_of greater than n cannot be streamed.", param="best_of")
    if body.echo and body.logprobs is not None:
        raise unsupported("logprobs", "logprobs together with echo (prompt logprobs)")


class CompletionStreamFormatter(ChunkStream):
    def __init__(
        self, request_id: str, created: int, model: str, echoes: list[str] | None, options: StreamOptions | None
    ) -> None:
        envelope = CompletionChunk(id=request_id, object=_OBJECT, created=created, model=model, choices=[])
        super().__init__(envelope, options)
        self._echoes = echoes

    def opening(self, index: int) -> bytes | None:
        if self._echoes is None:
            return None
        return self._framer.frame(CompletionChoice(index, self._echoes[index], None))

    def chunk(self, index: int, delta: Delta, usage: Usage | None = None, offset: int = 0) -> bytes:
        echoed = len(self._echoes[index]) if self._echoes is not None else 0
        tokens = completion_logprobs(delta.logprobs, offset + echoed) if delta.logprobs else None
        return self._framer.frame(CompletionChoice(index, delta.text, delta.finish_reason, tokens), usage)


@dataclass(frozen=True)
class CompletionPlan:
    """A completions request, planned: every candidate's complete generation request, and
    what rendering its deltas needs."""

    id: str  # cmpl-…
    created: int
    model_name: str  # as the client named it, shown in the response
    model: ModelInfo
    choices: list[Choice]  # every best_of candidate; n of each prompt's are shown
    n: int
    best_of: int
    echo: bool
    tokenizer: TokenizerTools | None
    stops: StageFactory
    structured: StructuredOutput
    stream: bool
    stream_options: StreamOptions | None

    @property
    def stages(self) -> list[StageFactory]:
        """The pipeline stages of each candidate, in order."""
        return [self.stops]

    def formatter(self) -> CompletionStreamFormatter:
        echoes = [choice.request.prompt for choice in self.choices] if self.echo else None
        return CompletionStreamFormatter(self.id, self.created, self.model_name, echoes, self.stream_options)


async def plan_completion(
    body: CompletionRequest, state: GatewayState, triton_request_id: str, conversation: str | None = None
) -> CompletionPlan:
    """Check the request against the model it names and build its generation requests
    (`conversation`: as for plan_chat)."""
    check_completion(body)
    structured = await StructuredOutput.checked(body.response_format)
    target = await resolve_target(state, body.model)
    model = target.model
    tokenizer = state.tokenizers.tools(model.name, model.adds_special_tokens)
    prompts = prompt_texts(body, tokenizer)
    for prompt in prompts:
        await check_room(state.model_files.max_model_len(model), prompt, body.max_tokens, tokenizer)
    best_of = body.best_of or body.n
    generation = generation_request(
        body,
        request_id=triton_request_id,
        prompt=prompts[0],
        max_tokens=body.max_tokens or state.settings.default_max_tokens,
        guided=structured.guided,
        vocab_size=tokenizer.vocab_size() if tokenizer else None,
        logprobs=body.logprobs,
        sampled_in_top=True,  # completions' top_logprobs hold the sampled token too
        cumulative_logprob=best_of > body.n,  # to rank the candidates
        lora_name=target.adapter,
        lora_path=target.adapter_path,
        # a raw prompt's start: a system part that later turns repeat
        routing_key=routing_key(prompts[0][:RAW_PROMPT_START], conversation or body.user)
        if state.prefix_routing
        else None,
    )
    return CompletionPlan(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model_name=body.model,
        model=model,
        choices=plan_choices(generation, prompts, best_of),
        n=body.n,
        best_of=best_of,
        echo=body.echo,
        tokenizer=tokenizer,
        stops=stop_stage(generation, model.flavour),
        structured=structured,
        stream=body.stream,
        stream_options=body.stream_options,
    )


def completion_response(plan: CompletionPlan, usage: Usage | None) -> Completion:
    """The non-streamed response: the best n candidates of each prompt (all were generated,
    so all count in the usage)."""
    shown = best_candidates(plan.choices, plan.n) if plan.best_of > plan.n else plan.choices
    choices = [_completion_choice(index, choice, plan.echo) for index, choice in enumerate(shown)]
    return Completion(id=plan.id, created=plan.created, model=plan.model_name, choices=choices, usage=usage)


def best_candidates(candidates: list[Choice], n: int) -> list[Choice]:
    """The n candidates of each prompt with the highest cumulative logprob, prompt by prompt."""
    kept = []
    for prompt_index in sorted({choice.prompt_index for choice in candidates}):
        group = [choice for choice in candidates if choice.prompt_index == prompt_index]
        if any(choice.cumulative_logprob is None for choice in group):
            raise BadGateway("The model did not report the cumulative logprobs best_of needs.")
        group.sort(key=lambda choice: choice.cumulative_logprob or 0.0, reverse=True)
        kept += group[:n]
    return kept


def _completion_choice(index: int, choice: Choice, echo: bool) -> CompletionChoice:
    echoed = choice.request.prompt if echo else ""
    logprobs = completion_logprobs(choice.logprobs, len(echoed)) if choice.logprobs is not None else None
    return CompletionChoice(index, echoed + choice.text, choice.finish_reason or "stop", logprobs)
