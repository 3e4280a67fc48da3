"""A CPU stand-in for Triton's vLLM backend (`backend: "vllm"`).

It is installed as a Python-based backend, like the real one, and speaks the same tensor
protocol with the same quirks, so the gateway cannot tell it apart on the wire:

* inputs `text_input`, `stream`, `sampling_parameters` (a JSON string), `exclude_input_in_output`
  and the `return_*` switches; outputs `text_output`, `finish_reason`, `num_input_tokens`,
  `num_output_tokens`, `cumulative_logprob`, `logprobs`, each only when asked for;
* streaming sends the text generated since the previous response, `finish_reason` is the
  string "None" until the last response, `num_output_tokens` counts this response's tokens,
  and the last data response carries the final flag (no empty final);
* non-streaming prepends the prompt unless `exclude_input_in_output` is true; streaming with
  `exclude_input_in_output` false is an error;
* sampling parameters are coerced with int()/float()/bool()/str(); an unknown key or an invalid
  value fails with vLLM's unhelpful "'NoneType' object has no attribute 'lora_name'"; keys are
  not coerced, so `logit_bias` fails with an empty message (vLLM 0.32 wraps its TypeError);
* images to a model whose engine arguments allow none (`limit_mm_per_prompt`) fail with an
  empty message, as vLLM 0.32's "Multi-modal processor not available for text-only models" does;
* vLLM 0.32's refusals: a prompt past `max_model_len` and out-of-vocabulary `stop_token_ids`
  end in "(parameter=NAME, value=V)";
* the end-of-sequence token is counted in `num_output_tokens` but adds no text;
* a cancelled request is aborted at the next step with the error "Request was cancelled".

Instead of a neural network it "generates" a reply that repeats the last user turn:
"You said: <text>", one BPE token per step, followed by the end-of-sequence token (a turn
starting with "/raw " is repeated verbatim, so tests can script the model's exact output; one
starting with "/fail" makes it raise after three tokens). With
`temperature > 0` the opening words are drawn at random (reproducibly with `seed`).
Knobs for tests live under the `stand_in` key of `model.json`:
`token_delay_ms` (pause before each token), `tokens_per_response` (streaming batch size) and
`prefix_cache` (a simulated prefix cache, standin/prefix_cache.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# The Python-backend stub runs an isolated interpreter that ignores PYTHONPATH; honour it.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
from standin.decoupled import AsyncDecoupledModel
from standin.generation import Generation
from standin.prefix_cache import PrefixCache
from standin.text import (
    FAIL_PREFIX,
    RAW_PREFIX,
    StandInTokenizer,
    asks_for_prompt_report,
    guided_reply,
    last_user_turn,
    reply_for,
    resolve,
)

# vLLM SamplingParams fields and the callable the vLLM backend coerces each with.
_SCALAR_PARAMS: dict[str, type] = {
    "n": int,
    "best_of": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "repetition_penalty": float,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "seed": int,
    "ignore_eos": bool,
    "max_tokens": int,
    "min_tokens": int,
    "logprobs": int,
    "prompt_logprobs": int,
    "detokenize": bool,
    "skip_special_tokens": bool,
    "spaces_between_special_tokens": bool,
    "include_stop_str_in_output": bool,
    "lora_name": str,
}
_OTHER_PARAMS = {
    "stop",
    "stop_token_ids",
    "bad_words",
    "logit_bias",
    "allowed_token_ids",
    "structured_outputs",
    "guided_decoding",
}


class _SilentEngineError(Exception):
    """vLLM 0.32's wrapper of unexpected engine exceptions: its message is empty."""

    def __str__(self) -> str:
        return ""


class SamplingParams:
    """What the stand-in honours of vLLM's SamplingParams, validated like vLLM does."""

    def __init__(self, params: dict[str, Any], guided_keys: list[str], vocab_size: int) -> None:
        for key in params:
            known = key in _SCALAR_PARAMS or key in _OTHER_PARAMS
            if not known or (key in ("structured_outputs", "guided_decoding") and key not in guided_keys):
                raise TypeError(f"unexpected keyword argument '{key}'")
        coerced = {
            key: (_SCALAR_PARAMS[key](value) if key in _SCALAR_PARAMS else value) for key, value in params.items()
        }
        self.n: int = coerced.get("n", 1)
        self.temperature: float = coerced.get("temperature", 1.0)
        self.top_p: float = coerced.get("top_p", 1.0)
        self.seed: int | None = coerced.get("seed")
        self.max_tokens: int = coerced.get("max_tokens", 16)
        self.min_tokens: int = coerced.get("min_tokens", 0)
        self.ignore_eos: bool = coerced.get("ignore_eos", False)
        self.logprobs: int | None = coerced.get("logprobs")
        self.presence_penalty: float = coerced.get("presence_penalty", 0.0)
        self.frequency_penalty: float = coerced.get("frequency_penalty", 0.0)
        self.include_stop_str_in_output: bool = coerced.get("include_stop_str_in_output", False)
        self.lora_name: str | None = coerced.get("lora_name")
        # Values are coerced, keys are not: logit_bias keeps the JSON object's string keys,
        # exactly what reaches vLLM through the real backend.
        self.logit_bias = {token: float(bias) for token, bias in (coerced.get("logit_bias") or {}).items()}
        self.vocab_size = vocab_size
        guided = coerced.get("structured_outputs", coerced.get("guided_decoding"))
        self.guided: dict[str, Any] | None = json.loads(guided) if isinstance(guided, str) else guided
        stop = coerced.get("stop", [])
        self.stop: list[str] = [stop] if isinstance(stop, str) else list(stop)
        self.stop_token_ids: list[int] = [int(t) for t in coerced.get("stop_token_ids", [])]
        self._verify()

    def _verify(self) -> None:
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if self.n != 1:
            raise ValueError("the stand-in model generates one sequence per request")
        if self.temperature < 0:
            raise ValueError("temperature must be non-negative")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError("min_tokens must be in [0, max_tokens]")
        if not -2.0 <= self.presence_penalty <= 2.0:
            raise ValueError("presence_penalty must be in [-2, 2]")
        if not -2.0 <= self.frequency_penalty <= 2.0:
            raise ValueError("frequency_penalty must be in [-2, 2]")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError("logprobs must be non-negative")
        if any(not isinstance(s, str) for s in self.stop):
            raise ValueError("stop must be a string or a list of strings")


def engine_checks(params: SamplingParams) -> None:
    """What vLLM's engine checks once the request reaches it (past the backend's parsing)."""
    if any(isinstance(token, str) for token in params.logit_bias):
        # vLLM compares the keys with ints and fails with a TypeError, which vLLM 0.32 wraps
        # into an exception whose message is empty.
        raise _SilentEngineError()
    outside = [token for token in params.stop_token_ids if not 0 <= token < params.vocab_size]
    if outside:
        raise ValueError(
            f"token_id(s) {outside} in stop_token_ids contain out-of-vocab token ids. "
            f"Vocabulary size: {params.vocab_size} (parameter=stop_token_ids, value={outside})"
        )


def _parse_sampling_parameters(raw: str, guided_keys: list[str], vocab_size: int) -> SamplingParams | None:
    """Mirror the vLLM backend: any failure yields None (and a confusing error later)."""
    try:
        return SamplingParams(json.loads(raw), guided_keys, vocab_size)
    except Exception:  # noqa: BLE001 - the real backend swallows everything here too
        return None


class TritonPythonModel(AsyncDecoupledModel):
    """The decoupled vLLM-like model."""

    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        assert pb_utils.using_decoupled_model_transaction_policy(self.model_config), (
            "vLLM Triton backend must be configured to use decoupled model transaction policy"
        )
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "model.json")) as file:
            engine_args = json.load(file)
        self.tokenizer = StandInTokenizer(resolve(version_dir, engine_args["model"]))
        self.eos_id = self.tokenizer.eos_id
        self.max_model_len = int(engine_args.get("max_model_len", 4096))
        # A stand-in for vLLM's view of the model's architecture: multimodal when its engine
        # arguments allow images per prompt. (The config declares `image` either way, as the
        # real backend's auto-complete does.)
        limits = engine_args.get("limit_mm_per_prompt") or {}
        self.multimodal = bool(limits.get("image", 0)) if isinstance(limits, dict) else False
        # vLLM given a reasoning parser (engine argument `reasoning_parser`) lets a reasoning model
        # think freely and enforces the guided-decoding grammar only once the parser sees the
        # thinking end (vllm/v1/structured_output: the reasoner's is_reasoning_end gates the
        # grammar). The stand-in thinks one sentence, closes it with </think>, then answers guided.
        self.reasons = bool(engine_args.get("reasoning_parser"))
        # `stand_in.thinks`: a reasoning model's reply, thinking first (the template opened it).
        self.thinks = bool(engine_args.get("stand_in", {}).get("thinks"))
        # r25.11+ takes guided decoding under both keys; r25.01-r25.10 only under guided_decoding.
        self.task = engine_args.get("stand_in", {}).get("task", "generate")  # or "embed"
        self.guided_keys = list(
            engine_args.get("stand_in", {}).get("guided_keys", ["structured_outputs", "guided_decoding"])
        )
        stand_in = engine_args.get("stand_in", {})
        self.token_delay = float(stand_in.get("token_delay_ms", 0)) / 1000.0
        self.tokens_per_response = int(stand_in.get("tokens_per_response", 1))
        # `stand_in.prefix_cache`: a simulated prefix cache, for prefix-affine routing (see standin/prefix_cache.py).
        self.prefix_cache = PrefixCache.from_knobs(stand_in.get("prefix_cache"))

        self.loras: list[str] | None = None
        if str(engine_args.get("enable_lora", "false")).lower() == "true":
            with open(os.path.join(version_dir, "multi_lora.json")) as file:
                self.loras = list(json.load(file))

        self.logger = pb_utils.Logger
        self.start_loop()

    def error_response(self, exc: Exception) -> Any:
        message = str(exc) if isinstance(exc, _LoraError) else f"Error generating stream: {exc}"
        self.logger.log_error(f"[vllm] {message}")
        text = pb_utils.Tensor("text_output", np.array([b"N/A"], dtype=np.object_))
        return pb_utils.InferenceResponse(output_tensors=[text], error=pb_utils.TritonError(message))

    async def generate(self, request: Any, sender: Any) -> None:
        embedding_request = _input_bytes(request, "embedding_request")
        task = "embed" if embedding_request is not None else "generate"
        if task != self.task:
            raise ValueError(f"Model {self.model_config['name']} does not support '{task}' request")
        if embedding_request is not None:
            self._embed(json.loads(embedding_request), request, sender)
            return
        prompt = _input_bytes(request, "text_input").decode("utf-8")
        stream = _input_bool(request, "stream", False)
        exclude = _input_bool(request, "exclude_input_in_output", None)
        prepend_input = (not exclude) if exclude is not None else (not stream)
        if prepend_input and stream:
            raise ValueError("When streaming, `exclude_input_in_output` = False is not allowed.")
        raw_params = _input_bytes(request, "sampling_parameters")
        params_json = raw_params.decode("utf-8") if raw_params is not None else request.parameters()
        wanted = {
            name: bool(_input_bool(request, name, False))
            for name in (
                "return_finish_reason",
                "return_cumulative_logprob",
                "return_logprobs",
                "return_num_input_tokens",
                "return_num_output_tokens",
            )
        }

        lora_name = json.loads(params_json).get("lora_name")
        if lora_name is not None:
            if self.loras is None:
                raise _LoraError("LoRA feature is not enabled.")
            if lora_name not in self.loras:
                raise _LoraError(f"LoRA {lora_name} is not supported, we currently support {self.loras}")

        params = _parse_sampling_parameters(params_json, self.guided_keys, self.tokenizer.vocab_size())
        _ = params.lora_name  # type: ignore[union-attr]  # the real backend fails here the same way
        engine_checks(params)  # type: ignore[arg-type]

        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=True)  # as engine.generate() does
        if len(prompt_ids) > self.max_model_len:
            # vLLM 0.32's wording, with its (parameter=…, value=…) suffix.
            raise ValueError(
                f"This model's maximum context length is {self.max_model_len} tokens. However, your prompt "
                f"contains at least {len(prompt_ids)} input tokens. Please reduce the length of the input prompt. "
                f"(parameter=input_tokens, value={len(prompt_ids)})"
            )
        if params.guided:
            reply = guided_reply(params.guided, last_user_turn(prompt))
            if self.reasons:
                reply = f"The answer must follow the schema.</think>{reply}"
        elif asks_for_prompt_report(prompt):
            reply = self.tokenizer.prompt_report(prompt_ids)
        else:
            reply = reply_for(prompt, params.temperature, params.seed)
            said = last_user_turn(prompt)
            if self.thinks and not said.startswith(RAW_PREFIX):
                reply = f"The user wrote: {said} I will repeat it.</think>{reply}"
        if params.lora_name is not None:
            reply = f"[{params.lora_name}] {reply}"  # shows which adapter served the request
        images = _images(request)
        if images and not self.multimodal:
            # vLLM: "Multi-modal processor not available for text-only models", which vLLM 0.32
            # reports with an empty message.
            self.logger.log_error("[vllm] Multi-modal processor not available for text-only models")
            raise _SilentEngineError()
        if images:
            reply += f" [{len(images)} image{'s' if len(images) > 1 else ''}: {', '.join(images)}]"
        generation = Generation(self.tokenizer, prompt_ids, reply, params, self.max_model_len)

        if self.prefix_cache is not None:
            found, total = self.prefix_cache.visit(prompt)
            self.logger.log_info(f"[vllm] prefix cache: {found} of {total} blocks for {request.request_id()}")
            await asyncio.sleep(self.prefix_cache.prefill_seconds(found, total))
        failing = last_user_turn(prompt).startswith(FAIL_PREFIX)  # tests make the model raise this way
        request_id = request.request_id()
        sent_upto = 0  # characters of generation.text already sent (streaming)
        pending_tokens = 0
        first = True
        while not generation.finished:
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            else:
                await asyncio.sleep(0)
            if sender.is_cancelled():
                self.logger.log_info(f"[vllm] Cancelling the request {request_id}")
                if stream:
                    sender.send(
                        pb_utils.InferenceResponse(
                            error=pb_utils.TritonError("Request was cancelled", pb_utils.TritonError.CANCELLED)
                        ),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                    )
                    return
                break
            generation.step()
            pending_tokens += 1
            if failing and len(generation.token_ids) >= 3:
                raise RuntimeError("stand-in failure after 3 tokens")
            if stream and (generation.finished or pending_tokens >= self.tokens_per_response):
                visible = generation.visible_text()
                outputs = self._outputs(
                    wanted,
                    text=visible[sent_upto:],
                    generation=generation,
                    new_tokens=pending_tokens,
                    prompt_tokens=len(prompt_ids),
                    first=first,
                )
                sent_upto = len(visible)
                pending_tokens = 0
                first = False
                flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if generation.finished else 0
                sender.send(pb_utils.InferenceResponse(output_tensors=outputs), flags=flags)

        if not stream:
            text = generation.visible_text()
            outputs = self._outputs(
                wanted,
                text=(prompt + text) if prepend_input else text,
                generation=generation,
                new_tokens=len(generation.token_ids),
                prompt_tokens=len(prompt_ids),
                first=True,
            )
            sender.send(
                pb_utils.InferenceResponse(output_tensors=outputs),
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
            )

    def _embed(self, embedding_request: dict[str, Any], request: Any, sender: Any) -> None:
        """A deterministic unit vector derived from the input's tokens (the text_output is its
        JSON, as with the real backend)."""
        source = embedding_request["input"]
        ids = source if isinstance(source, list) else self.tokenizer.encode(source)
        dimensions = embedding_request.get("pooling_params", {}).get("dimensions", [16])[0]
        vector = [math.sin(sum(ids) * (index + 1) + len(ids)) for index in range(int(dimensions))]
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        tensors = [
            pb_utils.Tensor(
                "text_output", np.array([json.dumps([v / norm for v in vector]).encode()], dtype=np.object_)
            )
        ]
        if _input_bool(request, "return_num_input_tokens", False):
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array(len(ids), dtype=np.uint32)))
        if _input_bool(request, "return_num_output_tokens", False):
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array(0, dtype=np.uint32)))
        sender.send(
            pb_utils.InferenceResponse(output_tensors=tensors), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        )

    def _outputs(
        self,
        wanted: dict[str, bool],
        *,
        text: str,
        generation: Generation,
        new_tokens: int,
        prompt_tokens: int,
        first: bool,
    ) -> list[Any]:
        tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))]
        if wanted["return_finish_reason"]:
            reason = str(generation.finish_reason).encode("utf-8")
            tensors.append(pb_utils.Tensor("finish_reason", np.array([reason], dtype=np.object_)))
        if wanted["return_cumulative_logprob"]:
            value = generation.cumulative_logprob if generation.params.logprobs is not None else math.nan
            tensors.append(pb_utils.Tensor("cumulative_logprob", np.array([value], dtype=np.float32)))
        if wanted["return_logprobs"]:
            entries = generation.logprob_entries(new_tokens)
            payload = b"null" if entries is None else json.dumps(entries).encode("utf-8")
            tensors.append(pb_utils.Tensor("logprobs", np.array([payload], dtype=np.object_)))
        if wanted["return_num_input_tokens"]:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array(prompt_tokens, dtype=np.uint32)))
        if wanted["return_num_output_tokens"]:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([new_tokens], dtype=np.uint32)))
        return tensors


class _LoraError(Exception):
    """Raised with the vLLM backend's own LoRA messages (sent without the generic prefix)."""


_IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"RIFF": "webp"}


def _images(request: Any) -> list[str]:
    """The formats of the base64 images in the `image` input (PIL would refuse anything else)."""
    tensor = pb_utils.get_input_tensor_by_name(request, "image")
    if tensor is None:
        return []
    formats = []
    for encoded in tensor.as_numpy().reshape(-1):
        data = base64.b64decode(encoded)
        kind = next((name for magic, name in _IMAGE_SIGNATURES.items() if data.startswith(magic)), None)
        if kind is None:
            raise ValueError("cannot identify image file")
        formats.append(kind)
    return formats


def _input_bytes(request: Any, name: str) -> bytes | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)[0]
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _input_bool(request: Any, name: str, default: bool | None) -> bool | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    return bool(tensor.as_numpy().reshape(-1)[0])
