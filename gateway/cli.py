"""Command line: every flag can also be given as an environment variable GATEWAY_<FLAG>."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.access import ApiGroup
from gateway.backends.base import STRUCTURED_OUTPUTS_KEYS
from gateway.logs import configure_logging
from gateway.settings import Settings
from gateway.triton.flavours import BackendFamily
from gateway.triton.targets import TargetError, parse_target

ENV_PREFIX = "GATEWAY_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number (0-65535)")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def _seconds_or_off(text: str) -> float | None:
    """Seconds, or None for 0 (the limit switched off)."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (off) or a number of seconds")
    return value or None


def _target(text: str) -> str:
    try:
        parse_target(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-openai-gateway",
        description="An OpenAI-compatible HTTP gateway in front of a Triton Inference Server (gRPC).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def flag(name: str, help_text: str, **kwargs: Any) -> None:
        variable = env_name(name)
        parser.add_argument(name, help=f"{help_text} [env: {variable}]", **kwargs)

    defaults = Settings()
    flag(
        "--triton-url",
        "gRPC target of tritonserver: HOST:PORT, or several Tritons balanced by gRPC (round_robin, health-checked): "
        "ipv4:HOST:PORT,HOST:PORT / ipv6:[ADDR]:PORT,... / dns:///NAME:PORT (every address NAME resolves to)",
        type=_target,
        default=defaults.triton_url,
        metavar="TARGET",
    )
    flag(
        "--grpc-channels",
        "gRPC channels (each with its own connection to every Triton) that requests take in turn",
        type=_positive_int,
        default=defaults.grpc_channels,
        metavar="N",
    )
    flag("--host", "address to listen on", default=defaults.host)
    flag(
        "--workers",
        "gateway processes sharing the port (SO_REUSEPORT); one per spare core scales throughput",
        type=_positive_int,
        default=defaults.workers,
        metavar="N",
    )
    flag("--openai-port", "port of the OpenAI API", type=_port, default=defaults.openai_port)
    flag(
        "--tokenizer",
        "tokenizer for chat templates and token counts: a local directory or a Hugging Face id; "
        "MODEL=SOURCE sets it for one model (repeatable; env: comma-separated)",
        action="append",
        metavar="[MODEL=]DIR_OR_HF_ID",
    )
    flag("--chat-template", "Jinja chat template file overriding the tokenizer's", type=Path, metavar="FILE")
    flag(
        "--backend",
        "treat every text model as this backend instead of detecting it from its config",
        choices=[family.value for family in BackendFamily],
    )
    flag(
        "--default-max-tokens",
        "max_tokens for requests that set neither max_tokens nor max_completion_tokens",
        type=_positive_int,
        default=defaults.default_max_tokens,
        metavar="N",
    )
    flag(
        "--http-max-input-size",
        "largest request body accepted, in bytes (larger ones get 413)",
        type=_positive_int,
        default=defaults.http_max_input_size,
        metavar="BYTES",
    )
    flag(
        "--model-refresh-interval",
        "seconds between re-reads of Triton's model repository",
        type=float,
        default=defaults.model_refresh_interval,
        metavar="SECONDS",
    )
    flag(
        "--structured-outputs-key",
        "the sampling-parameters key vLLM models take guided decoding under: structured_outputs "
        "(vLLM backend r25.11+) or guided_decoding (r25.01-r25.10); MODEL=KEY sets it for one model "
        "(repeatable; env: comma-separated)",
        action="append",
        metavar="[MODEL=]KEY",
    )
    flag("--lora-separator", "select a LoRA adapter with the model name <base><SEP><adapter>", metavar="SEP")
    flag(
        "--model-repository",
        "a local or mounted view of Triton's model repository, read for each model's multi_lora.json",
        type=Path,
        metavar="DIR",
    )
    flag(
        "--lora-modules",
        "adapters given explicitly, BASE:NAME=PATH (repeatable; env: comma-separated)",
        action="append",
        metavar="BASE:NAME=PATH",
    )
    flag(
        "--tool-call-parser",
        "how models write tool calls, for tool_choice auto: llama3, mistral or hermes; MODEL=PARSER sets it "
        "for one model (repeatable; env: comma-separated)",
        action="append",
        metavar="[MODEL=]PARSER",
    )
    flag(
        "--max-tool-call-parse-bytes",
        "longest tool call parsed; past it the request ends with finish_reason length",
        type=_positive_int,
        default=defaults.max_tool_call_parse_bytes,
        metavar="BYTES",
    )
    flag(
        "--special-tokens-in-content",
        "chat input (content, names, tool calls and definitions, chat_template_kwargs) holding the text of a "
        "special token of the model's tokenizer: reject (400), or allow, letting clients forge turns and tool calls",
        choices=["reject", "allow"],
        default=defaults.special_tokens_in_content,
    )
    flag(
        "--image-models",
        "models that take images, besides those whose model.json sets limit_mm_per_prompt or whose tokenizer "
        "folder holds an image processor config (comma-separated)",
        metavar="MODELS",
    )
    flag(
        "--allow-remote-images",
        "fetch http(s) image URLs named in chat messages (otherwise only data: URLs are taken)",
        action="store_true",
    )
    flag(
        "--remote-image-max-bytes",
        "largest image accepted, fetched or inline",
        type=_positive_int,
        default=defaults.remote_image_max_bytes,
        metavar="BYTES",
    )
    flag(
        "--remote-image-timeout",
        "seconds allowed for fetching one remote image",
        type=float,
        default=defaults.remote_image_timeout,
        metavar="SECONDS",
    )
    flag(
        "--allowed-media-domains",
        "fetch remote images only from these hosts (comma-separated; exact names, '*.example.com' for subdomains)",
        metavar="DOMAINS",
    )
    flag(
        "--allowed-media-networks",
        "CIDRs remote images may be fetched from although not public, e.g. 10.0.5.0/24 (comma-separated)",
        metavar="CIDRS",
    )
    flag(
        "--api-key",
        "a key clients must send as 'Authorization: Bearer KEY' on /v1 routes (repeatable; env: comma-separated)",
        action="append",
        metavar="KEY",
    )
    flag(
        "--admin-api-key",
        "the key ('Authorization: Bearer KEY') of the admin surface: model load/unload and, with "
        "--enable-kserve-admin, Triton's admin API; must differ from every --api-key (repeatable; env: comma-separated)",
        action="append",
        metavar="KEY",
    )
    flag(
        "--enable-model-control",
        "serve POST /v1/models/{id}/load and /unload (needs --admin-api-key and Triton in explicit mode)",
        action="store_true",
    )
    flag(
        "--openai-restricted-api",
        "require header HEADER=VALUE on the API groups APIS (comma-separated: inference, model-repository, "
        "metrics, health, admin), over HTTP and the KServe gRPC relay; repeatable (env: 'APIS HEADER VALUE' entries separated by ';')",
        nargs=3,
        action="append",
        metavar=("APIS", "HEADER", "VALUE"),
    )
    flag("--cors-allowed-origins", "origins browsers may call from ('*' for any; comma-separated)", metavar="ORIGINS")
    flag("--cors-allowed-methods", "methods allowed cross-origin (comma-separated)", default="GET,POST,OPTIONS")
    flag(
        "--cors-allowed-headers",
        "request headers allowed cross-origin (comma-separated)",
        default="Authorization,Content-Type,X-Request-Id",
    )
    flag(
        "--max-concurrent-requests",
        "inference requests in flight at most; past it, 429 with Retry-After",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--request-timeout",
        "seconds a request may take before it is cancelled on Triton (504; 0: no limit)",
        type=_seconds_or_off,
        default=defaults.request_timeout,
        metavar="SECONDS",
    )
    flag(
        "--header-read-timeout",
        "seconds from a request's first byte to the end of its headers; slower connections are closed",
        type=_positive_seconds,
        default=defaults.header_read_timeout,
        metavar="SECONDS",
    )
    flag(
        "--body-read-timeout",
        "seconds allowed for receiving an inference request's body (408 past it); no slot is held meanwhile",
        type=_positive_seconds,
        default=defaults.body_read_timeout,
        metavar="SECONDS",
    )
    flag(
        "--keepalive-timeout",
        "seconds an idle keep-alive connection stays open (keep it above a reverse proxy's own)",
        type=_positive_seconds,
        default=defaults.keepalive_timeout,
        metavar="SECONDS",
    )
    flag(
        "--max-connections",
        "open client connections at most; past it new connections get 503 and are closed",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--stream-stall-timeout",
        "seconds a streamed response may wait for a client that stopped reading before it is cancelled",
        type=_positive_seconds,
        default=defaults.stream_stall_timeout,
        metavar="SECONDS",
    )
    flag(
        "--grpc-keepalive-time",
        "seconds between HTTP/2 pings to Triton while calls are open, so a frozen Triton is noticed (0: off)",
        type=_seconds_or_off,
        default=defaults.grpc_keepalive_time,
        metavar="SECONDS",
    )
    flag(
        "--shutdown-timeout",
        "seconds in-flight requests get to finish after SIGTERM before they are cancelled",
        type=float,
        default=defaults.shutdown_timeout,
        metavar="SECONDS",
    )
    flag(
        "--triton-metrics-url",
        "Triton's Prometheus endpoint, merged into /metrics (e.g. http://triton:8002/metrics)",
        metavar="URL",
    )
    flag(
        "--enable-kserve-frontends",
        "also expose Triton's KServe v2 API: HTTP /v2/... on the OpenAI port and gRPC on --kserve-grpc-port",
        action="store_true",
    )
    flag(
        "--enable-kserve-admin",
        "RISKY: also forward Triton's admin API (repository index/load/unload, which take model files, i.e. "
        "code; shared-memory register/status; logging; trace; statistics) to holders of --admin-api-key",
        action="store_true",
    )
    flag(
        "--triton-http-url",
        "Triton's HTTP endpoint, for /v2 pass-through",
        default=defaults.triton_http_url,
        metavar="URL",
    )
    flag(
        "--kserve-grpc-port",
        "port of the gRPC pass-through to --triton-url",
        type=_port,
        default=defaults.kserve_grpc_port,
    )
    flag("--log-format", "log line format", choices=["text", "json"], default=defaults.log_format)
    flag(
        "--log-level",
        "logging level",
        default=defaults.log_level,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
    )
    return parser


def _environment_defaults(parser: argparse.ArgumentParser, environ: dict[str, str]) -> None:
    """Environment variables replace the built-in defaults; flags still win."""
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = environ.get(env_name(action.option_strings[0]))
        if value is None:
            continue
        if isinstance(action, argparse._AppendAction) and action.nargs == 3:
            action.default = [entry.split() for entry in value.split(";") if entry.strip()]
        elif isinstance(action, argparse._AppendAction):
            action.default = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(action, argparse._StoreTrueAction):
            action.default = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            try:
                action.default = action.type(value) if callable(action.type) else value
            except (argparse.ArgumentTypeError, ValueError) as exc:
                parser.error(f"{env_name(action.option_strings[0])}={value!r}: {exc}")
            if action.choices is not None and action.default not in action.choices:
                parser.error(f"{env_name(action.option_strings[0])}={value!r}: choose from {list(action.choices)}")


def parse_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    parser = build_parser()
    _environment_defaults(parser, dict(os.environ) if environ is None else environ)
    args = parser.parse_args(argv)
    _check_admin(parser, args)
    return Settings(
        triton_url=args.triton_url,
        grpc_channels=args.grpc_channels,
        workers=args.workers,
        host=args.host,
        openai_port=args.openai_port,
        tokenizer=tuple(args.tokenizer or ()),
        chat_template=args.chat_template,
        backend=BackendFamily(args.backend) if args.backend else None,
        default_max_tokens=args.default_max_tokens,
        http_max_input_size=args.http_max_input_size,
        model_refresh_interval=args.model_refresh_interval,
        structured_outputs_key=_structured_outputs_keys(parser, args.structured_outputs_key or ()),
        lora_separator=args.lora_separator,
        model_repository=args.model_repository,
        lora_modules=tuple(args.lora_modules or ()),
        tool_call_parser=_tool_call_parsers(parser, args.tool_call_parser or ()),
        max_tool_call_parse_bytes=args.max_tool_call_parse_bytes,
        special_tokens_in_content=args.special_tokens_in_content,
        image_models=_csv(args.image_models),
        allow_remote_images=args.allow_remote_images,
        remote_image_max_bytes=args.remote_image_max_bytes,
        remote_image_timeout=args.remote_image_timeout,
        allowed_media_domains=_media_domains(parser, _csv(args.allowed_media_domains)),
        allowed_media_networks=_media_networks(parser, _csv(args.allowed_media_networks)),
        log_level=args.log_level,
        log_format=args.log_format,
        api_keys=tuple(args.api_key or ()),
        admin_api_keys=tuple(args.admin_api_key or ()),
        enable_model_control=args.enable_model_control,
        enable_kserve_admin=args.enable_kserve_admin,
        restricted_apis=_restricted_apis(parser, args.openai_restricted_api or ()),
        cors_allowed_origins=_csv(args.cors_allowed_origins),
        cors_allowed_methods=_csv(args.cors_allowed_methods),
        cors_allowed_headers=_csv(args.cors_allowed_headers),
        max_concurrent_requests=args.max_concurrent_requests,
        request_timeout=args.request_timeout,
        header_read_timeout=args.header_read_timeout,
        body_read_timeout=args.body_read_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_connections=args.max_connections,
        stream_stall_timeout=args.stream_stall_timeout,
        grpc_keepalive_time=args.grpc_keepalive_time,
        shutdown_timeout=args.shutdown_timeout,
        triton_metrics_url=args.triton_metrics_url,
        enable_kserve_frontends=args.enable_kserve_frontends,
        triton_http_url=args.triton_http_url,
        kserve_grpc_port=args.kserve_grpc_port,
    )


API_GROUPS = tuple(group.value for group in ApiGroup)


def _check_admin(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The admin surface opens only on purpose, and only to a key of its own."""
    admin_keys = set(args.admin_api_key or ())
    for wanted, name in (
        (args.enable_model_control, "--enable-model-control"),
        (args.enable_kserve_admin, "--enable-kserve-admin"),
    ):
        if wanted and not admin_keys:
            parser.error(f"{name} needs --admin-api-key")
    if args.enable_kserve_admin and not args.enable_kserve_frontends:
        parser.error("--enable-kserve-admin needs --enable-kserve-frontends")
    if admin_keys & set(args.api_key or ()):
        parser.error("--admin-api-key must differ from every --api-key")
    if any(not key.strip() for key in admin_keys):
        parser.error("--admin-api-key must not be empty")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _media_domains(parser: argparse.ArgumentParser, names: Sequence[str]) -> tuple[str, ...]:
    """Host names, each exact or '*.' and a domain; anything URL-like is a mistake."""
    for name in names:
        bare = name.removeprefix("*.")
        if not bare or any(char in bare for char in "*/:@ "):
            parser.error(f"--allowed-media-domains {name}: give host names such as images.example.com or *.example.com")
    return tuple(names)


def _media_networks(parser: argparse.ArgumentParser, cidrs: Sequence[str]) -> tuple[str, ...]:
    """The CIDRs, checked now so that a typo stops the gateway instead of refusing every fetch."""
    from gateway.http.media_policy import parse_network

    networks = []
    for cidr in cidrs:
        try:
            networks.append(str(parse_network(cidr)))
        except ValueError as exc:
            parser.error(f"--allowed-media-networks {cidr}: not a network such as 10.0.5.0/24 ({exc})")
    return tuple(networks)


def _restricted_apis(
    parser: argparse.ArgumentParser, entries: Sequence[Sequence[str]]
) -> tuple[tuple[tuple[str, ...], str, str], ...]:
    restrictions = []
    for apis, header, value in entries:
        groups = _csv(apis)
        unknown = [group for group in groups if group not in API_GROUPS]
        if unknown or not groups:
            parser.error(f"--openai-restricted-api {apis}: API groups are {', '.join(API_GROUPS)}")
        restrictions.append((groups, header, value))
    return tuple(restrictions)


def _tool_call_parsers(parser: argparse.ArgumentParser, specs: Sequence[str]) -> tuple[str, ...]:
    from gateway.chat.tools import FORMATS

    for spec in specs:
        if spec.rpartition("=")[2] not in FORMATS:
            parser.error(f"--tool-call-parser {spec}: the parser is one of {', '.join(FORMATS)}")
    return tuple(specs)


def _structured_outputs_keys(parser: argparse.ArgumentParser, specs: Sequence[str]) -> tuple[str, ...]:
    for spec in specs:
        if spec.rpartition("=")[2] not in STRUCTURED_OUTPUTS_KEYS:
            parser.error(f"--structured-outputs-key {spec}: the key is one of {', '.join(STRUCTURED_OUTPUTS_KEYS)}")
    return tuple(specs)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from gateway.workers import supervise

        supervise(settings)
        return
    from gateway.app import run

    run(settings)
