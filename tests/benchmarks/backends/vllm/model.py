"""The benchmark's `vllm` backend: the vLLM backend's tensor protocol at the lowest cost.

Every request streams `max_tokens` copies of one token ("tok ") with `token_delay_ms`
(from model.json's "bench" section, 0 allowed) before each, so the measured costs are the
gateway's and Triton's, not a tokenizer's. Responses are built from pre-made arrays.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
_TOKEN = np.array([b"tok "], dtype=np.object_)
_NONE = np.array([b"None"], dtype=np.object_)
_ONE = np.array([1], dtype=np.uint32)


def _flag(request: Any, name: str) -> bool:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return bool(tensor.as_numpy().reshape(-1)[0]) if tensor is not None else False


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "model.json")) as file:
            bench = json.load(file).get("bench", {})
        self.delay = float(bench.get("token_delay_ms", 0)) / 1000.0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._serve(request), self.loop)

    def finalize(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    async def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        params = json.loads(pb_utils.get_input_tensor_by_name(request, "sampling_parameters").as_numpy()[0])
        tokens = int(params.get("max_tokens", 16))
        stream = _flag(request, "stream")
        prompt_tokens = np.array(
            len(pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()[0]) // 4, dtype=np.uint32
        )
        for index in range(tokens):
            await asyncio.sleep(self.delay)
            if sender.is_cancelled():
                pb_utils.Logger.log_info(f"[bench] cancelled {request.request_id()}")
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError("Request was cancelled")), flags=_FINAL
                )
                return
            last = index == tokens - 1
            if stream:
                sender.send(
                    self._response(_TOKEN, b"length" if last else None, prompt_tokens, _ONE),
                    flags=_FINAL if last else 0,
                )
        if not stream:
            text = np.array([b"tok " * tokens], dtype=np.object_)
            count = np.array([tokens], dtype=np.uint32)
            sender.send(self._response(text, b"length", prompt_tokens, count), flags=_FINAL)

    @staticmethod
    def _response(text: np.ndarray, finish: bytes | None, prompt_tokens: np.ndarray, count: np.ndarray) -> Any:
        reason = _NONE if finish is None else np.array([finish], dtype=np.object_)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("text_output", text),
                pb_utils.Tensor("finish_reason", reason),
                pb_utils.Tensor("num_input_tokens", prompt_tokens),
                pb_utils.Tensor("num_output_tokens", count),
            ]
        )
