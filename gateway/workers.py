"""`--workers N`: N gateway processes sharing the OpenAI port through SO_REUSEPORT.

The kernel spreads new connections over the workers, so each core runs its own event loop
with no hand-off between processes. This process only supervises: it starts the workers,
passes SIGTERM/SIGINT on to them, and replaces a worker that dies. Prometheus metrics are
kept in a shared directory so /metrics adds up every worker, whichever one answers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from types import FrameType

from gateway.settings import Settings

log = logging.getLogger(__name__)

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_RESTART_PAUSE = 1.0  # seconds between replacing a dead worker and checking again


def _serve(settings: Settings) -> None:
    from gateway.app import run
    from gateway.logs import configure_logging, stop_logging
    from gateway.processes import die_with_parent

    die_with_parent()  # no orphans if the supervisor is killed outright
    configure_logging(settings.log_level, settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops a worker
    try:
        run(settings, reuse_port=True)
    finally:
        stop_logging()  # a multiprocessing child exits without running atexit


def supervise(settings: Settings) -> None:
    """Run `settings.workers` workers until SIGTERM or SIGINT, then stop them gracefully."""
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = metrics_dir  # inherited by the workers
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no gRPC state across fork
    worker_settings = replace(settings, workers=1)
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_serve, args=(worker_settings,), name="gateway-worker", daemon=False)
        process.start()
        return process

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    workers = [start() for _ in range(settings.workers)]
    log.info("%d workers on port %s (pids %s)", len(workers), settings.openai_port, [p.pid for p in workers])
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            time.sleep(_RESTART_PAUSE)
            for i, process in enumerate(workers):
                if not process.is_alive() and not stopping:
                    log.error("worker %s exited with %s; starting another", process.pid, process.exitcode)
                    _forget_metrics_of(process)
                    workers[i] = start()
        deadline = time.monotonic() + settings.shutdown_timeout + 10
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _forget_metrics_of(process: BaseProcess) -> None:
    from prometheus_client import multiprocess

    if process.pid is not None:
        multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
