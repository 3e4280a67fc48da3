"""The benchmark harness still runs end to end (tiny settings; no timing is judged here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks import harness


@pytest.mark.timeout(240)
def test_harness_runs_and_writes_its_results(tmp_path: Path) -> None:
    harness.main(
        [
            "--concurrency=1,4",
            "--delays=0,2",
            "--tokens=8",
            "--seconds=0.5",
            "--warmup=0.1",
            "--rounds=2",
            "--open-streams=50",
            "--open-stream-tokens=2",
            "--open-stream-delay-ms=50",
            "--model-instances=1",
            "--profile",
            f"--output={tmp_path}",
        ]
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    modes = {(cell["delay_ms"], cell["mode"], cell["concurrency"]) for cell in result["cells"]}
    assert len(modes) == 2 * 4 * 2
    assert len(result["cells"]) == 2 * len(modes) and {cell["round"] for cell in result["cells"]} == {0, 1}
    for cell in result["cells"]:
        assert cell["errors"] == 0 and cell["requests"] > 0
        # Whoever is measured (the gateway, else the direct client) and the load client each spent CPU.
        assert cell["client_cpu_us_per_chunk"] > 0
        assert (cell["gateway_cpu_us_per_chunk"] is None) == (cell["mode"] == "direct")
        if cell["mode"] == "gateway-nonstream":
            assert cell["tokens"] == cell["requests"] * 8  # an answer's tokens count where it ended
        else:
            # Tokens count where they arrived: the window's edges cut at most one request per
            # worker each, so every request was answered whole.
            assert abs(cell["tokens"] - cell["requests"] * 8) <= 2 * cell["concurrency"] * 8
    assert len(result["ratios"]) == 4
    for row in result["ratios"]:  # the bare server measured beside the gateway, in each of the rounds
        assert row["rounds"] == 2 and len(row["stream_tokens_vs_direct_range"]) == 2
        assert row["bare_tokens_vs_direct"] > 0 and row["bare_cpu_vs_floor"] > 0 and row["gateway_cpu_vs_bare"] > 0
    assert result["open_streams"]["completed"] == 50 and result["open_streams"]["errors"] == 0
    assert set(result["sse_micro"]) == {"msgspec_framer", "json_dumps_dict"}
    # A flame graph per delay, of the gateway's own code serving streams.
    graphs = [Path(path) for path in result["flame_graphs"]]
    assert [graph.name for graph in graphs] == ["flame-0ms-c4.svg", "flame-2ms-c4.svg"]
    for graph in graphs:
        assert graph.read_text().startswith("<?xml") and "serve_stream" in graph.read_text()
    table = (tmp_path / "bench.md").read_text()
    assert "gateway-stream" in table and "stream tokens/s ÷ direct" in table and "bare-stream" in table
