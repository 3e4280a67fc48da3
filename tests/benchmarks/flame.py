"""The harness's `--profile`: a process run under py-spy, its flame graph written when it exits.

py-spy starts the process itself (it is its parent), so reading its stacks needs no permission
beyond the user's own: attaching to a running process by pid would need ptrace rights
(`CAP_SYS_PTRACE`, or Yama's ptrace_scope 0). Samples are taken only from a thread holding the
GIL, so the graph shows what the Python code spends (the event loop's idle waits and gRPC's own
threads are left out); the process's start-up (its imports) is one tower of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.load import children

PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_SECOND = 250


def py_spy() -> str:
    """py-spy's path (beside this Python's, else on PATH); SystemExit saying how to get it."""
    found = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy (make bench installs it)")
    return found


def profiled(command: list[str], svg: Path) -> list[str]:
    """`command` run under py-spy, its flame graph (of it and its subprocesses) to `svg`."""
    record = [py_spy(), "record", "--gil", "--subprocesses", "--rate", str(SAMPLES_PER_SECOND)]
    return [*record, "--output", str(svg), "--", *command]


def stop(profiler: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """End the process py-spy runs (SIGTERM, so it shuts down as it would in service) and wait
    for py-spy to write its graph; py-spy itself is stopped only if that fails."""
    for pid in children(profiler.pid):
        os.kill(pid, signal.SIGTERM)
    try:
        profiler.wait(timeout)
    except subprocess.TimeoutExpired:
        profiler.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
        profiler.wait(timeout)
