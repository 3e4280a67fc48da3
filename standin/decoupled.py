"""Base of the decoupled stand-ins that serve many requests at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class AsyncDecoupledModel:
    """execute() hands every request to an asyncio loop in a thread of its own, as the real
    vLLM and LLM-API models do; subclasses implement `generate` and may shape errors."""

    def start_loop(self) -> None:
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
        try:
            await self.generate(request, sender)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the client
            sender.send(self.error_response(exc), flags=FINAL)

    async def generate(self, request: Any, sender: Any) -> None:
        raise NotImplementedError

    def error_response(self, exc: Exception) -> Any:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
