"""Runs generation requests on Triton: picks the model's adapter, opens one stream per
request and turns its responses into deltas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from gateway.backends.base import BackendAdapter, BackendOptions, EmbeddingAdapter
from gateway.errors import BadGateway, InvalidRequest
from gateway.generation import Delta, GenerationRequest, TokenizerTools
from gateway.model_info import ModelInfo
from gateway.tracing import CallSpans
from gateway.triton.client import TritonClient, TritonErrorMessage

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, client: TritonClient, options: BackendOptions | None = None) -> None:
        self._client = client
        self._options = options or BackendOptions()
        self._adapters: dict[tuple[str, str], BackendAdapter] = {}

    def adapter(self, model: ModelInfo) -> BackendAdapter:
        """The model's flavour's adapter (one per model version); the registry serves only
        models whose flavour has one."""
        key = (model.name, model.version)
        adapter = self._adapters.get(key)
        if adapter is None:
            factory = model.flavour.adapter
            if factory is None:
                raise InvalidRequest(f"The model '{model.name}' is not served here.", param="model")
            adapter = self._adapters[key] = factory(model, self._options)
        return adapter

    async def stream(
        self, model: ModelInfo, request: GenerationRequest, tokenizer: TokenizerTools | None = None, index: int = 0
    ) -> AsyncGenerator[tuple[int, Delta], None]:
        """(index, delta) of one request, the last delta with a finish_reason; `index` tags
        them as one choice of several (one generator fewer between Triton and the client
        than tagging them afterwards). Close the iterator (e.g. with contextlib.aclosing) to
        cancel the request on Triton. The model's `tokenizer` lets adapters work out what a
        model does not report."""
        adapter = self.adapter(model)
        spans = CallSpans(model.name, request.request_id)
        error: BaseException | None = None
        try:
            for attempt in (1, 2):
                reader = adapter.reader(request, tokenizer)
                started = False
                infer = adapter.build_request(request)
                async with self._client.stream(infer, spans.metadata(), request.routing_key) as responses:
                    try:
                        async for response in responses:
                            delta = reader.read(response, responses.finished)
                            if not started:
                                started = True
                                spans.first_response()
                            yield index, delta
                            if delta.finish_reason is not None:
                                return
                    except (GeneratorExit, asyncio.CancelledError):
                        if not model.flavour.stops_on_cancel:
                            log.warning(
                                "request %s left unfinished: the %s model '%s' does not stop on cancellation and "
                                "generates up to %d tokens for it",
                                request.request_id,
                                model.flavour,
                                model.name,
                                request.max_tokens,
                            )
                        raise
                    except TritonErrorMessage as exc:
                        # e.g. TensorRT-LLM forgot a LoRA task: send it again, weights included.
                        if attempt == 1 and not started and adapter.retryable(exc.message, request):
                            continue
                        raise adapter.translate_error(exc.message) from None
                raise BadGateway("The model's responses ended without a finish reason.")
        except BaseException as exc:
            error = exc
            raise
        finally:
            spans.end(error)

    async def embed(
        self, model: ModelInfo, request_id: str, source: str | list[int], dimensions: int | None
    ) -> tuple[list[float], int | None]:
        """One input's embedding and token count, from a model whose backend can embed."""
        adapter = self.adapter(model)
        if not isinstance(adapter, EmbeddingAdapter):
            raise InvalidRequest(
                f"The model '{model.name}' ({model.flavour}) cannot embed text.",
                param="model",
                code="model_not_supported",
            )
        async with self._client.stream(adapter.build_embedding_request(request_id, source, dimensions)) as responses:
            try:
                async for response in responses:
                    if response.raw_output_contents:
                        return adapter.read_embedding(response)
            except TritonErrorMessage as exc:
                raise adapter.translate_error(exc.message) from None
        raise BadGateway("The model sent no embedding.")

    def stream_many(
        self, model: ModelInfo, requests: list[GenerationRequest], tokenizer: TokenizerTools | None = None
    ) -> AsyncGenerator[tuple[int, Delta], None]:
        """(choice index, delta) of several requests run side by side (one Triton stream each),
        in the order they arrive. The first failure ends them all; so does closing."""
        if len(requests) == 1:
            return self.stream(model, requests[0], tokenizer)
        return self._side_by_side(model, requests, tokenizer)

    async def _side_by_side(
        self, model: ModelInfo, requests: list[GenerationRequest], tokenizer: TokenizerTools | None
    ) -> AsyncGenerator[tuple[int, Delta], None]:
        queue: asyncio.Queue[tuple[int, Delta | BaseException]] = asyncio.Queue()

        async def pump(index: int, request: GenerationRequest) -> None:
            try:
                async with contextlib.aclosing(self.stream(model, request, tokenizer, index)) as deltas:
                    async for tagged in deltas:
                        queue.put_nowait(tagged)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                queue.put_nowait((index, exc))

        pumps = [asyncio.create_task(pump(index, request)) for index, request in enumerate(requests)]
        try:
            unfinished = len(requests)
            while unfinished:
                index, item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield index, item
                if item.finish_reason is not None:
                    unfinished -= 1
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
