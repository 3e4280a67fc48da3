"""A CPU stand-in for the TensorRT-LLM backend's token-level model (`backend: "tensorrtllm"`).

Token ids in, token ids out, decoupled, with a batch dimension, like the `tensorrt_llm` model
of the inflight_batcher_llm pipeline, and ending requests as the C++ backend
(`inflight_batcher_llm/src/model_instance_state.cc`) does. Streaming sends each new token in its
own response; a request that ends on the end id ends with a FINAL response carrying zero tokens
(`output_ids` [1, 1, 0], which `postprocessing` turns into ""); other ends flag the last data
response. A cancelled request (the backend polls `is_cancelled` and cancels it in the executor)
ends with a normal FINAL response, not an error. Stop words end generation after their tokens,
which stay in the output. Non-streaming output starts with the prompt unless
`exclude_input_in_output` is true. Both input generations are understood: `seed`/`random_seed`
and `min_tokens`/`min_length`.

`output_log_probs` ([1, beams, tokens]: one value per token generated in this response) and
`cum_log_probs` ([1, beams]: the total so far) are sent only with `return_log_probs` true, as
the C++ backend does. A token's logprob is derived from its id (`standin.text.token_logprob`).
Guided decoding (`guided_decoding_guide_type` `json_schema` or `json`, with
`guided_decoding_guide`) replies with a small JSON value that satisfies the guide. A last user
turn of `standin.text.PROMPT_REPORT` gets the count of prompt tokens (and of BOS among them)
as its reply, so tests can see what the engine received.

Configuration parameters: `tokenizer_dir` (relative to the model's directory) and
`stand_in_token_delay_ms`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# The Python-backend stub runs an isolated interpreter that ignores PYTHONPATH; honour it.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
from standin.decoupled import AsyncDecoupledModel
from standin.text import (
    StandInTokenizer,
    asks_for_prompt_report,
    guide_spec,
    guided_reply,
    last_user_turn,
    reply_for,
    reply_token,
    resolve,
    token_logprob,
)

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _scalar(request: Any, *names: str) -> Any:
    for name in names:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is not None:
            return tensor.as_numpy().reshape(-1)[0]
    return None


class _Wanted:
    """What a request asks to be sent besides the tokens."""

    def __init__(self, request: Any) -> None:
        self.input_count = bool(_scalar(request, "return_num_input_tokens") or False)
        self.output_count = bool(_scalar(request, "return_num_output_tokens") or False)
        self.log_probs = bool(_scalar(request, "return_log_probs") or False)
        self.outputs = set(request.requested_output_names())


def _stop_words(request: Any) -> list[list[int]]:
    """Decode the [2, K] stop-word format: flattened ids, then cumulative end offsets."""
    tensor = pb_utils.get_input_tensor_by_name(request, "stop_words_list")
    if tensor is None:
        return []
    ids, offsets = tensor.as_numpy().reshape(2, -1).tolist()
    words, start = [], 0
    for end in offsets:
        if end < 0:
            break
        words.append(ids[start:end])
        start = end
    return [word for word in words if word]


class TritonPythonModel(AsyncDecoupledModel):
    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in self.model_config.get("parameters", {}).items()}
        self.tokenizer = StandInTokenizer(resolve(args["model_repository"], parameters["tokenizer_dir"]))
        self.token_delay = float(parameters.get("stand_in_token_delay_ms", "0")) / 1000.0
        # TensorRT-LLM keeps LoRA weights in a bounded cache keyed by task id.
        self.lora_cache: collections.OrderedDict[int, tuple[int, ...]] = collections.OrderedDict()
        self.lora_cache_size = int(parameters.get("stand_in_lora_cache_size", "8"))
        self.logger = pb_utils.Logger
        self.start_loop()

    async def generate(self, request: Any, sender: Any) -> None:
        prompt_ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1).tolist()
        max_new = int(_scalar(request, "request_output_len"))
        if max_new <= 0:
            raise ValueError("request_output_len must be > 0")
        streaming = bool(_scalar(request, "streaming") or False)
        exclude_input = bool(_scalar(request, "exclude_input_in_output") or False)
        end_id = _scalar(request, "end_id")
        end_id = self.tokenizer.eos_id if end_id is None else int(end_id)
        min_new = int(_scalar(request, "min_tokens", "min_length") or 0)
        stop_words = _stop_words(request)
        wanted = _Wanted(request)

        reply = self._reply(request, self.tokenizer.decode(prompt_ids), prompt_ids)
        task = _scalar(request, "lora_task_id")
        if task is not None:
            self._use_lora(int(task), request)
            reply = f"[lora {int(task)}] {reply}"
        reply_ids = self.tokenizer.encode(reply) or [end_id]

        generated: list[int] = []
        request_id = request.request_id()
        ended_without_token = False  # on the end id or cancelled: the final response has no new token
        while len(generated) < max_new:
            await asyncio.sleep(self.token_delay)
            if sender.is_cancelled():
                self.logger.log_info(f"[trtllm] Cancelling the request {request_id}")
                ended_without_token = True
                break
            token = reply_token(reply_ids, len(generated), len(generated) >= min_new, end_id, self.tokenizer.space_id)
            if token == end_id:
                ended_without_token = True
                break
            generated.append(token)
            stopped = any(generated[-len(word) :] == word for word in stop_words)
            last = stopped or len(generated) >= max_new
            if streaming:
                sender.send(self._response([token], generated, 1, len(prompt_ids), wanted), flags=_FINAL if last else 0)
            if stopped:
                break

        if not streaming:
            ids = generated if exclude_input else prompt_ids + generated
            sender.send(
                self._response(ids, generated, len(generated), len(prompt_ids), wanted),
                flags=_FINAL,
            )
        elif ended_without_token or not generated:
            sender.send(self._response([], generated, 0, len(prompt_ids), wanted), flags=_FINAL)

    def _reply(self, request: Any, prompt: str, prompt_ids: list[int]) -> str:
        """What the model "generates": a JSON value that satisfies the guide, or the last turn
        repeated (the opening drawn at random unless greedy)."""
        if asks_for_prompt_report(prompt):
            return self.tokenizer.prompt_report(prompt_ids)
        guide_type = _scalar(request, "guided_decoding_guide_type")
        if guide_type is not None:
            guide = _scalar(request, "guided_decoding_guide") or b""
            return guided_reply(guide_spec(guide_type.decode(), guide.decode()), last_user_turn(prompt))
        top_k = _scalar(request, "runtime_top_k")
        top_p = _scalar(request, "runtime_top_p")
        temperature = _scalar(request, "temperature")
        # TensorRT-LLM decodes greedily when none of the three is set (its LLM API documents it).
        unset = top_k is None and top_p is None and temperature is None
        greedy = (
            unset or (top_k is not None and int(top_k) == 1) or (temperature is not None and float(temperature) == 0.0)
        )
        seed = _scalar(request, "seed", "random_seed")
        return reply_for(prompt, 0.0 if greedy else 1.0, None if seed is None else int(seed))

    def _use_lora(self, task: int, request: Any) -> None:
        weights = pb_utils.get_input_tensor_by_name(request, "lora_weights")
        config = pb_utils.get_input_tensor_by_name(request, "lora_config")
        if weights is not None and config is not None:
            self.lora_cache[task] = tuple(weights.as_numpy().shape)
            while len(self.lora_cache) > self.lora_cache_size:
                self.lora_cache.popitem(last=False)
        elif task not in self.lora_cache:
            raise ValueError(f"LoRA task {task} not found in cache. Please load LoRA task first")
        self.lora_cache.move_to_end(task)

    def _response(
        self, ids: list[int], generated: list[int], new_count: int, prompt_tokens: int, wanted: _Wanted
    ) -> Any:
        """`ids` as sent; `generated`: every token generated so far, the last `new_count` of them
        generated for this response."""
        new = generated[len(generated) - new_count :]
        tensors = [
            pb_utils.Tensor("output_ids", np.array(ids, dtype=np.int32).reshape(1, 1, len(ids))),
            pb_utils.Tensor("sequence_length", np.array([[len(ids)]], dtype=np.int32)),
        ]
        if wanted.input_count:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array([[prompt_tokens]], dtype=np.int32)))
        if wanted.output_count:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[len(new)]], dtype=np.int32)))
        if wanted.log_probs and "output_log_probs" in wanted.outputs:
            values = np.array([token_logprob(token) for token in new], dtype=np.float32).reshape(1, 1, len(new))
            tensors.append(pb_utils.Tensor("output_log_probs", values))
        if wanted.log_probs and "cum_log_probs" in wanted.outputs:
            total = sum(token_logprob(token) for token in generated)
            tensors.append(pb_utils.Tensor("cum_log_probs", np.array([[total]], dtype=np.float32)))
        return pb_utils.InferenceResponse(output_tensors=tensors)
