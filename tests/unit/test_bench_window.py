"""The benchmark's window accounting: tokens count where they arrived, not by request."""

from __future__ import annotations

from tests.benchmarks.load import Timing


def test_a_streamed_request_counts_only_the_tokens_inside_the_window() -> None:
    # Started before the window and ended after it: the middle of its tokens is the window's.
    timing = Timing(start=0.0, end=10.0, token_times=[float(at) for at in range(1, 10)], tokens=9)
    assert timing.tokens_between(3.0, 7.0) == 4
    assert timing.chunks_between(3.0, 7.0) == 4
    assert timing.tokens_between(20.0, 30.0) == 0


def test_a_whole_answer_counts_where_it_ended() -> None:
    plain = Timing(start=0.0, end=5.0, token_times=[5.0], tokens=64)
    assert plain.tokens_between(4.0, 6.0) == 64
    assert plain.chunks_between(4.0, 6.0) == 1
    assert plain.tokens_between(0.0, 5.0) == 0  # the window's end is open
