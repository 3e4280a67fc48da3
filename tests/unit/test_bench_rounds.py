"""The harness's --rounds: each round's cells set against each other, the median over rounds."""

from __future__ import annotations

import math

from tests.benchmarks import report
from tests.benchmarks.load import Cell


def cell(mode: str, turn: int, tokens: int, cpu_seconds: float | None, client_seconds: float = 0.1) -> Cell:
    return Cell(
        mode=mode,
        concurrency=64,
        seconds=1.0,
        requests=10,
        errors=0,
        tokens=tokens,
        chunks=tokens,
        ttft_ms=(5.0, 9.0),
        itl_ms=(1.0, 2.0),
        e2e_ms=50.0,
        gateway_cpu_seconds=cpu_seconds,
        client_cpu_seconds=client_seconds,
        round=turn,
    )


def one_round(turn: int, direct_tokens: int, gateway_tokens: int) -> list[Cell]:
    return [
        cell("direct", turn, direct_tokens, None),
        cell("gateway-stream", turn, gateway_tokens, 0.2),
        cell("gateway-nonstream", turn, gateway_tokens, 0.2),
    ]


def test_each_round_is_its_own_comparison_and_the_median_is_reported() -> None:
    # A slow second round: its direct and gateway cells are both slow, so its ratio holds.
    cells = one_round(0, 1000, 800) + one_round(1, 400, 360) + one_round(2, 1000, 700)
    (row,) = report.ratios(cells)
    assert row["rounds"] == 3
    assert row["stream_tokens_vs_direct"] == 0.8  # of 0.8, 0.9 and 0.7; pooled cells would say 0.78
    assert row["stream_tokens_vs_direct_range"] == [0.7, 0.9]
    assert math.isnan(row["bare_tokens_vs_direct"])  # no bare server in any round
    assert "bare_tokens_vs_direct_range" not in row
    table = report.markdown(
        {
            "settings": {"tokens": 8, "token_delays_ms": [0.0], "rounds": 3, "compare_label": ""},
            "cells": [c.as_dict() for c in cells],
            "ratios": [row],
            "gateway_peak_rss_mib": 1.0,
        }
    )
    assert "| 0.800 (0.700–0.900) |" in table and "gateway-stream (round 2)" in table


def test_one_round_reports_plain_ratios() -> None:
    (row,) = report.ratios(one_round(0, 1000, 900))
    assert row["stream_tokens_vs_direct"] == 0.9
    assert "rounds" not in row and "stream_tokens_vs_direct_range" not in row
