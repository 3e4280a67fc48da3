"""The one road from the engine to a response: every choice's deltas pass through the same
ordered stages (tool calls today; reasoning, say, tomorrow) and into one accumulator, the
choice. A streamed response frames the deltas as they come; a non-streamed one is the same
deltas joined, so both tell the same story by construction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Protocol

from gateway.generation import Delta
from gateway.openai.choices import Choice


class Stage(Protocol):
    """One step of a choice's deltas. It may rewrite a delta, hold it back (None), or end the
    choice early by giving it a finish_reason; it sees every delta of its choice in order."""

    def feed(self, delta: Delta) -> Delta | None: ...


StageFactory = Callable[[], Stage | None]  # one stage per choice; None: not needed for this request


async def choice_deltas(
    deltas: AsyncGenerator[tuple[int, Delta], None], choices: Sequence[Choice], stages: Sequence[StageFactory] = ()
) -> AsyncGenerator[tuple[int, Delta], None]:
    """(choice index, delta) after the choice's stages, each delta also added to its choice.
    Ends once every choice has finished; ending or closing it closes `deltas`, which cancels
    whatever still runs on Triton."""
    pipelines = [[stage for make in stages if (stage := make()) is not None] for _ in choices]
    finished: set[int] = set()
    async with contextlib.aclosing(deltas):
        async for index, delta in deltas:
            if index in finished:
                continue  # a stage ended this choice before the model did
            passed = _through(pipelines[index], delta)
            if passed is None:
                continue
            choices[index].add(passed)
            yield index, passed
            if passed.finish_reason is not None:
                finished.add(index)
                if len(finished) == len(choices):
                    return


def _through(stages: list[Stage], delta: Delta) -> Delta | None:
    for stage in stages:
        passed = stage.feed(delta)
        if passed is None:
            return None
        delta = passed
    return delta


async def run_to_end(
    deltas: AsyncGenerator[tuple[int, Delta], None], choices: Sequence[Choice], stages: Sequence[StageFactory] = ()
) -> None:
    """Take every delta, for a non-streamed response: the choices hold the whole answer."""
    async with contextlib.aclosing(choice_deltas(deltas, choices, stages)) as passed:
        async for _ in passed:
            pass
