"""Serving the deltas of a request's choices as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from aiohttp import web

from gateway.errors import APIError, BadGateway, GatewayTimeout, ShuttingDown
from gateway.generation import Delta, TokenizerTools
from gateway.http.middleware import DEADLINE, MODEL_NAME, STARTED, USAGE, cancelled_by_shutdown, within_deadline
from gateway.http.stall import StallWatch
from gateway.http.state import state_of
from gateway.model_info import ModelInfo
from gateway.openai.choices import Choice, total_usage
from gateway.openai.pipeline import StageFactory, choice_deltas, run_to_end
from gateway.sse import open_event_stream
from gateway.structured import StructuredOutput
from schemas.responses import Usage

log = logging.getLogger(__name__)


class StreamFormatter(Protocol):
    """How one API (chat or text completions, responses) frames its stream."""

    running_usage: bool  # whether chunks carry the usage so far (continuous usage stats)

    def opening(self, index: int) -> bytes | None:
        """The frames that start choice `index` (chat: the assistant role), if any."""
        ...

    def chunk(self, index: int, delta: Delta, usage: Usage | None = None, offset: int = 0) -> bytes:
        """The frame(s) of choice `index` for `delta`; `offset` is where its text starts in
        the choice's text."""
        ...

    async def closing(self, usage: Usage | None) -> bytes:
        """The frames after every choice has finished."""
        ...

    def failure(self, error: APIError) -> bytes:
        """The frames that end a stream that failed midway."""
        ...


class _StreamDeadline:
    """One timer for a whole stream, where a timeout around every delta would set and clear
    a timer per token: when it fires, it cancels the serving task, and the stream ends with
    a timeout error instead."""

    def __init__(self, deadline: float | None) -> None:
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None
        if deadline is not None:
            task = asyncio.current_task()
            assert task is not None
            self._handle = asyncio.get_running_loop().call_at(deadline, self._expire, task)

    def _expire(self, task: asyncio.Task[object]) -> None:
        self.expired = True
        task.cancel()

    def absorbed(self) -> bool:
        """In a CancelledError handler: whether the deadline caused it (the cancellation is
        then undone, so the stream can still be ended properly)."""
        if not self.expired:
            return False
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        return True

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _ended_early() -> BadGateway:
    return BadGateway("The model's stream ended without a final response.")


async def _next_delta(deltas: AsyncGenerator[tuple[int, Delta], None], deadline: float | None) -> tuple[int, Delta]:
    """The first delta, within the deadline (before the stream's one timer is set)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(deltas)
    except StopAsyncIteration:
        raise _ended_early() from None
    except TimeoutError:
        raise _timed_out() from None


def _timed_out() -> GatewayTimeout:
    return GatewayTimeout("The request took longer than the gateway's request timeout.")


async def generate_choices(
    request: web.Request,
    choices: list[Choice],
    model: ModelInfo,
    tokenizer: TokenizerTools | None,
    structured: StructuredOutput,
    stages: Sequence[StageFactory] = (),
) -> Usage | None:
    """Run every choice to its end within the request's deadline, through the delta pipeline
    (the choices then hold the answer); the usage, recorded in the metrics."""
    async with within_deadline(request):
        await run_to_end(_engine_deltas(request, choices, model, tokenizer), choices, stages)
    for choice in choices:
        await structured.check_output_async(choice.text)
    usage = total_usage(choices, tokenizer)
    record_usage(request, model.name, usage)
    return usage


def stream_choices(
    request: web.Request,
    choices: list[Choice],
    model: ModelInfo,
    tokenizer: TokenizerTools | None,
    stages: Sequence[StageFactory] = (),
) -> AsyncGenerator[tuple[int, Delta], None]:
    """The choices' deltas as they come, through the delta pipeline."""
    return choice_deltas(_engine_deltas(request, choices, model, tokenizer), choices, stages)


def _engine_deltas(
    request: web.Request, choices: list[Choice], model: ModelInfo, tokenizer: TokenizerTools | None
) -> AsyncGenerator[tuple[int, Delta], None]:
    """Every choice's request run on Triton side by side, as (choice index, delta)."""
    return state_of(request).engine.stream_many(model, [choice.request for choice in choices], tokenizer)


def record_usage(request: web.Request, model: str, usage: Usage | None) -> None:
    """The request's usage: counted in the metrics and kept for its access line."""
    if usage is not None:
        metrics = state_of(request).metrics
        metrics.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        metrics.completion_tokens.labels(model).inc(usage.completion_tokens)
        request[USAGE] = usage


async def serve_stream(
    request: web.Request,
    choices: list[Choice],
    deltas: AsyncGenerator[tuple[int, Delta], None],
    formatter: StreamFormatter,
    *,
    tokenizer: TokenizerTools | None,
    structured: StructuredOutput,
) -> web.StreamResponse:
    """Stream the choices' deltas (from `stream_choices`) as SSE, each chunk tagged with its
    choice index.

    An error before the first delta is an ordinary JSON error response (the status still
    means something then); later errors end the stream with the formatter's failure frames. Leaving
    early (client gone) closes `deltas`, which cancels every choice's request on Triton.
    A strict `structured` output judges each choice's whole text when it ends."""
    running_usage = formatter.running_usage
    check_output = structured.check_output_async if structured.checks_output else None
    deadline = request.get(DEADLINE)
    metrics = state_of(request).metrics
    model = request.get(MODEL_NAME, "")
    async with contextlib.aclosing(deltas):
        index, delta = await _next_delta(deltas, deadline)
        last_chunk = time.perf_counter()
        metrics.ttft.labels(model).observe(last_chunk - request.get(STARTED, last_chunk))
        response = await open_event_stream(request)
        watch = StallWatch(request.transport, state_of(request).settings.stream_stall_timeout)
        write = response.write
        timer = _StreamDeadline(deadline)
        itl = metrics.itl.labels(model)  # looked up once, observed per chunk
        started: set[int] = set()
        unfinished = len(choices)
        # The frames of one delta (a choice's opening, its chunk; at the end the closing
        # frames) go out in one write: one syscall and one chunk of the HTTP body.
        out: list[bytes] = []
        headers_sent = False  # they leave with the first write, which an empty delta must still make
        try:
            try:
                while True:
                    choice = choices[index]
                    if index not in started:
                        started.add(index)
                        opening = formatter.opening(index)
                        if opening is not None:
                            out.append(opening)
                    offset = choice.length - len(delta.text)  # the pipeline has added the delta already
                    finish_reason = delta.finish_reason
                    if delta.text or delta.reasoning or finish_reason is not None or delta.logprobs or delta.tool_calls:
                        usage = total_usage(choices, tokenizer) if running_usage else None
                        out.append(formatter.chunk(index, delta, usage, offset))
                    if finish_reason is not None:
                        if check_output is not None:
                            await check_output(choice.text)
                        unfinished -= 1
                        if not unfinished:
                            break
                    if out or not headers_sent:
                        await write(b"".join(out))  # one frame: the frame itself, not a copy
                        out.clear()
                        headers_sent = True
                    try:
                        index, delta = await anext(deltas)
                    except StopAsyncIteration:
                        raise _ended_early() from None
                    now = time.perf_counter()
                    itl.observe(now - last_chunk)
                    last_chunk = now
                usage = total_usage(choices, tokenizer)
                record_usage(request, model, usage)
                out.append(await formatter.closing(usage))
            except APIError as error:
                log.warning("stream of %s failed midway: %s", request.path, error.message)
                out.append(formatter.failure(error))
            except asyncio.CancelledError:
                if timer.absorbed():
                    out.append(formatter.failure(_timed_out()))
                elif watch.stalled:
                    _drop_stalled(request)
                    raise
                elif not cancelled_by_shutdown(request):
                    watch.close()
                    raise  # the client left
                else:
                    out.append(formatter.failure(ShuttingDown()))
            except ConnectionResetError:
                watch.close()
                raise
            except Exception:
                log.exception("stream of %s failed midway", request.path)
                out.append(formatter.failure(APIError("The gateway failed while streaming.", code="internal_error")))
            timer.cancel()  # the last frames go out whatever the clock says
            try:
                await response.write_eof(b"".join(out))  # with the body's end: one send
            except asyncio.CancelledError:
                if watch.stalled:
                    _drop_stalled(request)
                raise
        finally:
            timer.cancel()
            watch.close()
    return response


def _drop_stalled(request: web.Request) -> None:
    """End the connection of a client that stopped reading, dropping what it did not read
    (a plain close would wait for it to read first)."""
    if request.transport is not None:
        request.transport.abort()
