"""`make run`: a local tritonserver with the demo models, and the gateway in front of it.

The demo models in standin/models are CPU stand-ins served by this project's stand-in vLLM
backend (standin/backends/vllm); the tokenizer is standin/tokenizer. Ctrl-C or SIGTERM stops
both processes. To use a real Triton instead, run `python -m gateway --triton-url ...`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.app import run
from gateway.localtriton import LocalTriton, TritonStartError
from gateway.logs import configure_logging
from gateway.processes import die_with_parent
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STAND_INS = ROOT / "standin"  # the CPU stand-in backends, demo models and tokenizer

log = logging.getLogger("gateway.demo")


def stand_in_triton(model_repository: Path, **options: Any) -> LocalTriton:
    """A local tritonserver with this project's stand-in backends (`vllm`, `tensorrtllm`)
    and the stand-ins' shared code importable by Python models."""
    backends = [STAND_INS / "backends" / "vllm", STAND_INS / "backends" / "tensorrtllm"]
    return LocalTriton(model_repository=model_repository, python_backends=backends, python_path=[ROOT], **options)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gateway.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address of the gateway")
    parser.add_argument("--openai-port", type=int, default=9000, help="port of the gateway")
    parser.add_argument("--kserve-grpc-port", type=int, default=9001, help="port of the KServe gRPC relay")
    parser.add_argument("--model-repository", type=Path, default=STAND_INS / "models")
    parser.add_argument("--tokenizer", default=str(STAND_INS / "tokenizer"))
    parser.add_argument("--log-level", default="INFO", type=str.upper)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    die_with_parent()  # if `make` is killed, stop too (and so stop tritonserver)
    configure_logging(args.log_level)
    triton = stand_in_triton(args.model_repository)
    log.info("starting tritonserver with %s", args.model_repository)
    try:
        triton.start()
    except TritonStartError as exc:
        log.error("%s", exc)
        sys.exit(1)
    log.info("tritonserver ready: gRPC %s, HTTP %s (log: %s)", triton.grpc_url, triton.http_url, triton.log_path)
    # Every kind of model the README shows: chat with tool calls (hermes), a TensorRT-LLM
    # pipeline, LoRA adapters (vllm-stand-in::sql-adapter), embeddings, a reasoning model, and
    # Triton's own KServe API on the gateway (HTTP /v2 and gRPC on --kserve-grpc-port).
    settings = Settings(
        triton_url=triton.grpc_url,
        host=args.host,
        openai_port=args.openai_port,
        tokenizer=(args.tokenizer,),
        tool_call_parser=("hermes",),
        reasoning_parser=("reasoning-stand-in=deepseek_r1",),
        lora_separator="::",
        model_repository=args.model_repository,
        enable_kserve_frontends=True,
        triton_http_url=triton.http_url,
        kserve_grpc_port=args.kserve_grpc_port,
    )

    def announce(app: web.Application) -> None:
        # (The model table was logged once already, when the models were first read.)
        print(f"Gateway ready: http://{args.host}:{args.openai_port}/v1   (Ctrl-C to stop)", flush=True)

    try:
        run(settings, announce)
    finally:
        triton.cleanup()
        log.info("stopped")


if __name__ == "__main__":
    main()
