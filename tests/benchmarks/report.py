"""The harness's outputs: a JSON file, a Markdown table and a PNG plot."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.benchmarks.load import Cell

# Ratios whose spread over the rounds is reported beside their median.
SPREAD = ("stream_tokens_vs_direct", "gateway_cpu_vs_floor", "tokens_vs_direct", "compared_tokens_vs_direct")


def ratios(cells: list[Cell]) -> list[dict[str, Any]]:
    """gateway/direct and streaming/non-streaming at each concurrency; with the bare server's
    cells, its tokens/s against direct and the gateway's CPU split at the bare server's. Each
    round's cells are set against each other, and each figure is the median over the rounds."""
    return _over_rounds(cells, _round_ratios)


def compared(cells: list[Cell], label: str) -> list[dict[str, Any]]:
    """The second gateway (--compare-flags, --compare-source; `label` names its cells) beside
    the first, streamed, at each concurrency (the median over the rounds)."""
    if not label:
        return []
    return _over_rounds(cells, lambda round_cells: _round_compared(round_cells, label))


def _over_rounds(cells: list[Cell], rows_of: Callable[[list[Cell]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """`rows_of` each round's cells, merged per (delay, concurrency): each number the median
    over the rounds that have it; with several rounds, `rounds` and the SPREAD ratios'
    [lowest, highest] as `<name>_range`."""
    per_round = [rows_of([cell for cell in cells if cell.round == turn]) for turn in sorted({c.round for c in cells})]
    grouped: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for rows in per_round:
        for row in rows:
            grouped.setdefault((row["delay_ms"], row["concurrency"]), []).append(row)
    merged = []
    for (delay, concurrency), rows in sorted(grouped.items()):
        row: dict[str, Any] = {"delay_ms": delay, "concurrency": concurrency}
        for name in rows[0]:
            if name in row:
                continue
            values = [r[name] for r in rows if r[name] is not None and not math.isnan(r[name])]
            row[name] = round(statistics.median(values), 3) if values else float("nan")
            if len(per_round) > 1 and name in SPREAD:
                row[f"{name}_range"] = [min(values), max(values)] if values else None
        if len(per_round) > 1:
            row["rounds"] = len(rows)
        merged.append(row)
    return merged


def _round_ratios(cells: list[Cell]) -> list[dict[str, Any]]:
    by_key = {(cell.delay_ms, cell.mode, cell.concurrency): cell for cell in cells}
    rows = []
    for delay, concurrency in sorted({(cell.delay_ms, cell.concurrency) for cell in cells}):
        direct = by_key.get((delay, "direct", concurrency))
        stream = by_key.get((delay, "gateway-stream", concurrency))
        plain = by_key.get((delay, "gateway-nonstream", concurrency))
        bare = by_key.get((delay, "bare-stream", concurrency))
        if not (direct and stream and plain):
            continue
        floor = direct.client_cpu_us_per_chunk or 0.0
        bare_cpu = (bare and bare.cpu_us_per_chunk) or 0.0
        rows.append(
            {
                "delay_ms": delay,
                "concurrency": concurrency,
                "stream_tokens_vs_direct": _ratio(stream.tokens_per_second, direct.tokens_per_second),
                "stream_requests_vs_nonstream": _ratio(stream.requests_per_second, plain.requests_per_second),
                "added_ttft_p50_ms": round(stream.ttft_ms[0] - direct.ttft_ms[0], 3),
                "added_ttft_p99_ms": round(stream.ttft_ms[1] - direct.ttft_ms[1], 3),
                "gateway_cpu_us_per_chunk": stream.cpu_us_per_chunk and round(stream.cpu_us_per_chunk, 2),
                "floor_cpu_us_per_chunk": direct.client_cpu_us_per_chunk and round(direct.client_cpu_us_per_chunk, 2),
                "gateway_cpu_vs_floor": _ratio(stream.cpu_us_per_chunk or 0.0, floor),
                "bare_tokens_vs_direct": _ratio(bare.tokens_per_second, direct.tokens_per_second) if bare else math.nan,
                "bare_cpu_vs_floor": _ratio(bare_cpu, floor),
                "gateway_cpu_vs_bare": _ratio(stream.cpu_us_per_chunk or 0.0, bare_cpu),
            }
        )
    return rows


def _round_compared(cells: list[Cell], label: str) -> list[dict[str, Any]]:
    by_key = {(cell.delay_ms, cell.mode, cell.concurrency): cell for cell in cells}
    rows = []
    for delay, concurrency in sorted({(cell.delay_ms, cell.concurrency) for cell in cells}):
        direct = by_key.get((delay, "direct", concurrency))
        first = by_key.get((delay, "gateway-stream", concurrency))
        second = by_key.get((delay, f"gateway-stream {label}", concurrency))
        if not (direct and first and second):
            continue
        floor = direct.client_cpu_us_per_chunk or 0.0
        rows.append(
            {
                "delay_ms": delay,
                "concurrency": concurrency,
                "tokens_vs_direct": _ratio(first.tokens_per_second, direct.tokens_per_second),
                "compared_tokens_vs_direct": _ratio(second.tokens_per_second, direct.tokens_per_second),
                "cpu_vs_floor": _ratio(first.cpu_us_per_chunk or 0.0, floor),
                "compared_cpu_vs_floor": _ratio(second.cpu_us_per_chunk or 0.0, floor),
            }
        )
    return rows


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"  # NaN: not measured


def _spread(row: dict[str, Any], name: str, digits: int = 2) -> str:
    """The median, and over several rounds its lowest and highest: `0.83 (0.79–0.88)`."""
    spread = row.get(f"{name}_range")
    median = _number(row[name], digits)
    return f"{median} ({spread[0]:.{digits}f}–{spread[1]:.{digits}f})" if spread else median


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def markdown(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        f"# Benchmark: {settings['tokens']} tokens per request, model delay per token {settings['token_delays_ms']} ms",
        "",
    ]
    lines += [
        (
            "| delay ms | mode | conc. | req/s | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms "
            "| CPU µs/chunk | of it kernel | load client µs/chunk | errors |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    several = settings.get("rounds", 1) > 1
    for cell in result["cells"]:
        # the gateway's CPU; for the direct client its own (the floor)
        direct = cell["mode"] == "direct"
        cpu = cell.get("client_cpu_us_per_chunk") if direct else cell["gateway_cpu_us_per_chunk"]
        load_client = None if direct else cell.get("client_cpu_us_per_chunk")
        mode = f"{cell['mode']} (round {cell['round'] + 1})" if several else cell["mode"]
        lines.append(
            f"| {cell['delay_ms']:g} | {mode} | {cell['concurrency']} | {cell['requests_per_s']:.1f} | {cell['tokens_per_s']:.0f} "
            f"| {_number(cell['ttft_p50_ms'])} | {_number(cell['ttft_p99_ms'])} | {_number(cell['itl_p50_ms'])} "
            f"| {_number(cell['itl_p99_ms'])} | {_number(cpu, 1)} | {_number(cell.get('kernel_cpu_us_per_chunk'), 1)} "
            f"| {_number(load_client, 1)} | {cell['errors']} |"
        )
    lines += [
        "",
        (
            "| delay ms | conc. | stream tokens/s ÷ direct | stream req/s ÷ non-stream | added TTFT p50 ms "
            "| added TTFT p99 ms | gateway CPU ÷ floor | bare tokens/s ÷ direct | bare CPU ÷ floor "
            "| gateway CPU ÷ bare |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["ratios"]:
        lines.append(
            f"| {row['delay_ms']:g} | {row['concurrency']} | {_spread(row, 'stream_tokens_vs_direct', 3)} "
            f"| {row['stream_requests_vs_nonstream']:.3f} | {row['added_ttft_p50_ms']:.2f} | {row['added_ttft_p99_ms']:.2f} "
            f"| {_spread(row, 'gateway_cpu_vs_floor')} "
            f"| {_number(row.get('bare_tokens_vs_direct'), 3)} | {_number(row.get('bare_cpu_vs_floor'))} "
            f"| {_number(row.get('gateway_cpu_vs_bare'))} |"
        )
    label = result["settings"]["compare_label"]
    if result.get("compared"):
        lines += [
            "",
            f"| delay ms | conc. | tokens/s ÷ direct | with `{label}` | CPU per chunk ÷ floor | with `{label}` |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["compared"]:
            lines.append(
                f"| {row['delay_ms']:g} | {row['concurrency']} | {_spread(row, 'tokens_vs_direct', 3)} "
                f"| {_spread(row, 'compared_tokens_vs_direct', 3)} | {_number(row['cpu_vs_floor'])} "
                f"| {_number(row['compared_cpu_vs_floor'])} |"
            )
    micro = result.get("sse_micro")
    if micro:
        lines += ["", "SSE encoding: " + ", ".join(f"{name} {rate:,.0f} chunks/s" for name, rate in micro.items())]
    if result.get("flame_graphs"):
        lines += [
            "",
            "Flame graphs (py-spy, a gateway serving the streamed load): " + ", ".join(result["flame_graphs"]),
        ]
    held = result.get("open_streams")
    if held:
        lines += [
            "",
            (
                f"Open streams: {held['completed']}/{held['streams']} completed, {held['errors']} errors, "
                f"gateway peak RSS {held['gateway_peak_rss_mib']:.0f} MiB, {held['seconds']:.1f} s."
            ),
        ]
    if several:
        lines += ["", f"Ratios: the median of {settings['rounds']} rounds (lowest–highest in brackets)."]
    lines += [
        "",
        (
            "Non-streamed rows count one chunk per request, so their CPU column is per request. The direct rows' CPU "
            'is the direct client\'s own: a client that only reads the same Triton streams (the floor). "Of it kernel" is '
            'the system time in it: socket reads and writes, mostly. "Load client" is what the HTTP client generating '
            "the load spent per chunk, on the same cores. The bare server serves the same streams with aiohttp and "
            "grpc.aio and does nothing else: the least a Python HTTP gateway spends here."
        ),
        f"Gateway peak RSS over the run: {result['gateway_peak_rss_mib']:.0f} MiB.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> bool:
    """Throughput and TTFT against concurrency; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (tokens_axis, ttft_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for delay in result["settings"]["token_delays_ms"]:
        for mode in ("direct", "gateway-stream", "gateway-nonstream", "bare-stream"):
            cells = [cell for cell in result["cells"] if cell["mode"] == mode and cell["delay_ms"] == delay]
            xs = sorted({cell["concurrency"] for cell in cells})

            def median(name: str) -> list[float]:  # over the rounds, at each concurrency
                return [statistics.median(c[name] for c in cells if c["concurrency"] == x) for x in xs]  # noqa: B023

            label = f"{mode} ({delay:g} ms)"
            tokens_axis.plot(xs, median("tokens_per_s"), marker="o", label=label)
            ttft_axis.plot(xs, median("ttft_p50_ms"), marker="o", label=f"{label} p50")
    for axis, title, unit in ((tokens_axis, "Output tokens/s", "tokens/s"), (ttft_axis, "Time to first token", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrency")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    ttft_axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def write(result: dict[str, Any], directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (directory / "bench.md").write_text(table)
    plot(result, directory / "bench.png")
    return table
