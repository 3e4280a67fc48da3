"""The gateway's configuration, as parsed from flags and environment variables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.triton.flavours import BackendFamily


@dataclass(frozen=True)
class Settings:
    triton_url: str = "127.0.0.1:8001"  # a gRPC target: one Triton or several
    grpc_channels: int = 2
    workers: int = 1
    host: str = "0.0.0.0"
    openai_port: int = 9000
    tokenizer: tuple[str, ...] = ()
    chat_template: Path | None = None
    backend: BackendFamily | None = None
    default_max_tokens: int = 16
    http_max_input_size: int = 64 * 1024 * 1024
    model_refresh_interval: float = 5.0
    structured_outputs_key: tuple[str, ...] = ()
    lora_separator: str | None = None
    model_repository: Path | None = None  # a local or mounted view of Triton's, for multi_lora.json
    lora_modules: tuple[str, ...] = ()  # BASE:NAME=PATH
    tool_call_parser: tuple[str, ...] = ()
    max_tool_call_parse_bytes: int = 131072
    special_tokens_in_content: str = "reject"  # or "allow": special-token text in chat input forges turns
    image_models: tuple[str, ...] = ()  # models that take images, besides what their files say
    allow_remote_images: bool = False
    remote_image_max_bytes: int = 10 * 1024 * 1024
    remote_image_timeout: float = 10.0
    allowed_media_domains: tuple[str, ...] = ()  # empty: any host (whose addresses are public)
    allowed_media_networks: tuple[str, ...] = ()  # CIDRs fetched from although not public
    log_level: str = "INFO"
    log_format: str = "text"  # or "json"
    api_keys: tuple[str, ...] = ()
    admin_api_keys: tuple[str, ...] = ()  # for the admin surface only; never an inference key
    enable_model_control: bool = False  # POST /v1/models/{id}/load|unload
    enable_kserve_admin: bool = False  # Triton's admin API through the KServe frontends
    restricted_apis: tuple[tuple[tuple[str, ...], str, str], ...] = ()  # (groups, header, value)
    cors_allowed_origins: tuple[str, ...] = ()
    cors_allowed_methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")
    cors_allowed_headers: tuple[str, ...] = ("Authorization", "Content-Type", "X-Request-Id")
    max_concurrent_requests: int | None = None
    request_timeout: float | None = 600.0  # None: no deadline
    header_read_timeout: float = 30.0  # from a request's first byte to the end of its headers
    body_read_timeout: float = 30.0
    keepalive_timeout: float = 75.0  # idle keep-alive connections close after this long
    max_connections: int | None = None
    stream_stall_timeout: float = 60.0  # a stream whose client stops reading is cancelled after this
    grpc_keepalive_time: float | None = 60.0  # seconds between HTTP/2 pings to Triton while calls are open
    shutdown_timeout: float = 30.0
    triton_metrics_url: str | None = None
    enable_kserve_frontends: bool = False
    triton_http_url: str = "http://127.0.0.1:8000"
    kserve_grpc_port: int = 8001


def per_model(specs: Sequence[str], model: str) -> str | None:
    """The value for `model` among "VALUE" (every model) and "MODEL=VALUE" entries."""
    value = None
    for spec in specs:
        name, sep, setting = spec.rpartition("=")
        if not sep:
            value = setting
        elif name == model:
            return setting
    return value
