"""The gateway's settings, each declared once: its type, default, help text and how a text value
becomes it. The command line, the GATEWAY_* environment variables and a --config file (TOML or
YAML) are all derived from these declarations by gateway/cli.py."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.access import ApiGroup
from gateway.model_info import BackendFamily
from gateway.triton.targets import TargetError, parse_target


class Kind(enum.Enum):
    """How a setting is written."""

    VALUE = "value"  # one value
    SWITCH = "switch"  # a flag without a value; true/false in the environment or a file
    REPEATED = "repeated"  # a flag given once per item; comma-separated in the environment
    CSV = "csv"  # one comma-separated list (a list in a file)
    TRIPLES = "triples"  # a flag with three values, repeatable; 'A B C' entries separated by ';' in the environment


@dataclass(frozen=True)
class Option:
    help: str
    kind: Kind = Kind.VALUE
    parse: Callable[[str], Any] = str  # one text value (or list item) -> what the setting holds; ValueError says why
    metavar: str | tuple[str, ...] | None = None
    flag: str | None = None  # when it is not --<field-name>
    choices: tuple[str, ...] = ()  # shown in the help; `parse` enforces them


def setting(default: Any, help: str, **option: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **option)})


def choice_setting(
    default: str, help: str, choices: tuple[str, ...], transform: Callable[[str], str] = str, **option: Any
) -> Any:
    """A setting that takes one of `choices` (listed once: shown in the help and enforced)."""
    return setting(default, help, parse=one_of(*choices, transform=transform), choices=choices, **option)


def option_of(name: str) -> Option:
    return Settings.__dataclass_fields__[name].metadata["option"]  # type: ignore[no-any-return]


def flag_of(name: str) -> str:
    return option_of(name).flag or "--" + name.replace("_", "-")


# -- parsers: one text value to what a setting holds; a ValueError says what is wrong --------


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def port(text: str) -> int:
    value = whole_number(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number (0-65535)")
    return value


def seconds(text: str) -> float:
    value = number(text)
    if value < 0:
        raise ValueError("must be a number of seconds")
    return value


def positive_seconds(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise ValueError("must be a number of seconds above 0")
    return value


def seconds_or_off(text: str) -> float | None:
    """Seconds, or None for 0 (the limit switched off)."""
    value = number(text)
    if value < 0:
        raise ValueError("must be 0 (off) or a number of seconds")
    return value or None


def one_of(*choices: str, transform: Callable[[str], str] = str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = transform(text.strip())
        if value not in choices:
            raise ValueError(f"choose from {', '.join(choices)}")
        return value

    return parse


def target(text: str) -> str:
    try:
        parse_target(text)
    except TargetError as exc:
        raise ValueError(str(exc)) from None
    return text.strip()


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def header_name(text: str) -> str:
    value = text.strip()
    if value and not _HEADER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP header name")
    return value


def backend_family(text: str) -> BackendFamily:
    try:
        return BackendFamily(text.strip())
    except ValueError:
        raise ValueError(f"choose from {', '.join(family.value for family in BackendFamily)}") from None


def per_model_choice(what: str, choices: Callable[[], Sequence[str]]) -> Callable[[str], str]:
    """A "[MODEL=]VALUE" entry whose VALUE is one of `choices` (read when first needed)."""

    def parse(text: str) -> str:
        allowed = choices()
        if text.rpartition("=")[2] not in allowed:
            raise ValueError(f"the {what} is one of {', '.join(allowed)}")
        return text

    return parse


def per_model_number(text: str) -> str:
    """A "[MODEL=]N" entry with N a whole number above 0."""
    positive_int(text.rpartition("=")[2])
    return text


def _tool_formats() -> Sequence[str]:
    from gateway.chat.tools import FORMATS

    return [*FORMATS, "auto"]


def _reasoning_formats() -> Sequence[str]:
    from gateway.reasoning import FORMATS

    return list(FORMATS)


def _structured_outputs_keys() -> Sequence[str]:
    from gateway.backends.base import STRUCTURED_OUTPUTS_KEYS

    return list(STRUCTURED_OUTPUTS_KEYS)


def media_domain(name: str) -> str:
    """A host name, exact or '*.' and a domain; anything URL-like is a mistake."""
    bare = name.removeprefix("*.")
    if not bare or any(char in bare for char in "*/:@ "):
        raise ValueError("give host names such as images.example.com or *.example.com")
    return name


def media_network(cidr: str) -> str:
    """A CIDR, checked now so that a typo stops the gateway instead of refusing every fetch."""
    from gateway.media.policy import parse_network

    try:
        return str(parse_network(cidr))
    except ValueError as exc:
        raise ValueError(f"not a network such as 10.0.5.0/24 ({exc})") from None


API_GROUPS = tuple(group.value for group in ApiGroup)


def restriction(apis: str, header: str, value: str) -> tuple[tuple[str, ...], str, str]:
    groups = split_csv(apis)
    if not groups or any(group not in API_GROUPS for group in groups):
        raise ValueError(f"API groups are {', '.join(API_GROUPS)}")
    return groups, header, value


def split_csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    triton_url: str = setting(
        "127.0.0.1:8001",
        "gRPC target of tritonserver: HOST:PORT, or several Tritons balanced by gRPC (round_robin, "
        "health-checked): ipv4:HOST:PORT,HOST:PORT / ipv6:[ADDR]:PORT,... / dns:///NAME:PORT (every "
        "address NAME resolves to)",
        parse=target,
        metavar="TARGET",
    )
    grpc_channels: int = setting(
        2,
        "gRPC channels (each with its own connection to every Triton) that requests take in turn",
        parse=positive_int,
        metavar="N",
    )
    routing: str = choice_setting(
        "round_robin",
        "how requests spread over several Tritons: round_robin (gRPC's own) or prefix (a conversation's "
        "requests to the Triton whose prefix cache holds it, by consistent hashing with bounded load)",
        ("round_robin", "prefix"),
        metavar="POLICY",
    )
    routing_header: str = setting(
        "",
        "with --routing prefix: a request header that names the conversation (e.g. X-Session-ID); a request "
        "carrying it is routed by its value, before the user field and the prompt's start",
        parse=header_name,
        metavar="NAME",
    )
    workers: int = setting(
        1,
        "gateway processes sharing the port (SO_REUSEPORT); one per spare core scales throughput",
        parse=positive_int,
        metavar="N",
    )
    host: str = setting("0.0.0.0", "address to listen on")
    openai_port: int = setting(9000, "port of the OpenAI API", parse=port, metavar="PORT")
    tokenizer: tuple[str, ...] = setting(
        (),
        "tokenizer for chat templates and token counts: a local directory or a Hugging Face id; "
        "MODEL=SOURCE sets it for one model",
        kind=Kind.REPEATED,
        metavar="[MODEL=]DIR_OR_HF_ID",
    )
    chat_template: Path | None = setting(
        None, "Jinja chat template file overriding the tokenizer's", parse=Path, metavar="FILE"
    )
    backend: BackendFamily | None = setting(
        None,
        "treat every text model as this backend instead of detecting it from its config",
        parse=backend_family,
        choices=tuple(family.value for family in BackendFamily),
    )
    default_max_tokens: int = setting(
        16, "max_tokens of text completions that set none (OpenAI's legacy default)", parse=positive_int, metavar="N"
    )
    default_chat_max_tokens: int = setting(
        4096,
        "max_tokens of chat requests that set neither max_tokens nor max_completion_tokens, for models whose "
        "context length is not known (otherwise they may run to the end of the context)",
        parse=positive_int,
        metavar="N",
    )
    max_model_len: tuple[str, ...] = setting(
        (),
        "the context length of a model, in tokens, where its model.json does not say (vLLM max_model_len; "
        "TensorRT-LLM max_seq_len); MODEL=N for one model",
        kind=Kind.REPEATED,
        parse=per_model_number,
        metavar="[MODEL=]N",
    )
    http_max_input_size: int = setting(
        64 * 1024 * 1024,
        "largest request body accepted, in bytes (larger ones get 413)",
        parse=positive_int,
        metavar="BYTES",
    )
    model_refresh_interval: float = setting(
        5.0, "seconds between re-reads of Triton's model repository", parse=positive_seconds, metavar="SECONDS"
    )
    structured_outputs_key: tuple[str, ...] = setting(
        (),
        "the sampling-parameters key vLLM models take guided decoding under: structured_outputs "
        "(vLLM backend r25.11+) or guided_decoding (r25.01-r25.10); MODEL=KEY sets it for one model",
        kind=Kind.REPEATED,
        parse=per_model_choice("key", _structured_outputs_keys),
        metavar="[MODEL=]KEY",
    )
    lora_separator: str | None = setting(
        None, "select a LoRA adapter with the model name <base><SEP><adapter>", metavar="SEP"
    )
    model_repository: Path | None = setting(
        None,
        "a local or mounted view of Triton's model repository, read for each model's multi_lora.json and model.json",
        parse=Path,
        metavar="DIR",
    )
    lora_modules: tuple[str, ...] = setting(
        (), "adapters given explicitly, BASE:NAME=PATH", kind=Kind.REPEATED, metavar="BASE:NAME=PATH"
    )
    tool_call_parser: tuple[str, ...] = setting(
        (),
        "how models write tool calls, for tool_choice auto: hermes, llama3, mistral, granite, pythonic, "
        "qwen3_coder, deepseek_v3, kimi_k2, or auto (told by the model's chat template); MODEL=PARSER sets it "
        "for one model",
        kind=Kind.REPEATED,
        parse=per_model_choice("parser", _tool_formats),
        metavar="[MODEL=]PARSER",
    )
    reasoning_parser: tuple[str, ...] = setting(
        (),
        "how models mark their thinking, moved to reasoning_content: deepseek_r1, deepseek_v3, qwen3, granite "
        "or openai_gptoss (harmony, with its tool calls); MODEL=PARSER sets it for one model",
        kind=Kind.REPEATED,
        parse=per_model_choice("parser", _reasoning_formats),
        metavar="[MODEL=]PARSER",
    )
    max_tool_call_parse_bytes: int = setting(
        131072,
        "longest tool call parsed; past it the request ends with finish_reason length",
        parse=positive_int,
        metavar="BYTES",
    )
    special_tokens_in_content: str = choice_setting(
        "reject",
        "chat input (content, names, tool calls and definitions, chat_template_kwargs) holding the text of a "
        "special token of the model's tokenizer: reject (400), or allow, letting clients forge turns and tool calls",
        ("reject", "allow"),
    )
    image_models: tuple[str, ...] = setting(
        (),
        "models that take images, besides those whose model.json sets limit_mm_per_prompt or whose tokenizer "
        "folder holds an image processor config",
        kind=Kind.CSV,
        metavar="MODELS",
    )
    allow_remote_images: bool = setting(
        False,
        "fetch http(s) image URLs named in chat messages (otherwise only data: URLs are taken)",
        kind=Kind.SWITCH,
    )
    remote_image_max_bytes: int = setting(
        10 * 1024 * 1024, "largest image accepted, fetched or inline", parse=positive_int, metavar="BYTES"
    )
    remote_image_timeout: float = setting(
        10.0, "seconds allowed for fetching one remote image", parse=positive_seconds, metavar="SECONDS"
    )
    allowed_media_domains: tuple[str, ...] = setting(
        (),
        "fetch remote images only from these hosts (exact names, '*.example.com' for subdomains)",
        kind=Kind.CSV,
        parse=media_domain,
        metavar="DOMAINS",
    )
    allowed_media_networks: tuple[str, ...] = setting(
        (),
        "CIDRs remote images may be fetched from although not public, e.g. 10.0.5.0/24",
        kind=Kind.CSV,
        parse=media_network,
        metavar="CIDRS",
    )
    log_level: str = choice_setting("INFO", "logging level", LOG_LEVELS, transform=str.upper)
    log_format: str = choice_setting("text", "log line format", ("text", "json"))
    api_keys: tuple[str, ...] = setting(
        (),
        "a key clients must send as 'Authorization: Bearer KEY' on /v1 routes",
        kind=Kind.REPEATED,
        flag="--api-key",
        metavar="KEY",
    )
    admin_api_keys: tuple[str, ...] = setting(
        (),
        "the key ('Authorization: Bearer KEY') of the admin surface: model load/unload and, with "
        "--enable-kserve-admin, Triton's admin API; must differ from every --api-key",
        kind=Kind.REPEATED,
        flag="--admin-api-key",
        metavar="KEY",
    )
    enable_model_control: bool = setting(
        False,
        "serve POST /v1/models/{id}/load and /unload (needs --admin-api-key and Triton in explicit mode)",
        kind=Kind.SWITCH,
    )
    restricted_apis: tuple[tuple[tuple[str, ...], str, str], ...] = setting(
        (),
        "require header HEADER=VALUE on the API groups APIS (comma-separated: inference, model-repository, "
        "metrics, health, admin), over HTTP and the KServe gRPC relay",
        kind=Kind.TRIPLES,
        parse=restriction,
        flag="--openai-restricted-api",
        metavar=("APIS", "HEADER", "VALUE"),
    )
    cors_allowed_origins: tuple[str, ...] = setting(
        (), "origins browsers may call from ('*' for any)", kind=Kind.CSV, metavar="ORIGINS"
    )
    cors_allowed_methods: tuple[str, ...] = setting(
        ("GET", "POST", "OPTIONS"), "methods allowed cross-origin", kind=Kind.CSV, metavar="METHODS"
    )
    cors_allowed_headers: tuple[str, ...] = setting(
        ("Authorization", "Content-Type", "X-Request-Id", "OpenAI-*", "X-Stainless-*"),
        "request headers allowed cross-origin; NAME* allows every header that starts so (the openai SDKs send "
        "OpenAI-Organization, OpenAI-Project and X-Stainless-* headers)",
        kind=Kind.CSV,
        metavar="HEADERS",
    )
    max_concurrent_requests: int | None = setting(
        None, "inference requests in flight at most; past it, 429 with Retry-After", parse=positive_int, metavar="N"
    )
    request_timeout: float | None = setting(
        600.0,
        "seconds a request may take before it is cancelled on Triton (504; 0: no limit)",
        parse=seconds_or_off,
        metavar="SECONDS",
    )
    header_read_timeout: float = setting(
        30.0,
        "seconds from a request's first byte to the end of its headers; slower connections are closed",
        parse=positive_seconds,
        metavar="SECONDS",
    )
    body_read_timeout: float = setting(
        30.0,
        "seconds allowed for receiving an inference request's body (408 past it); no slot is held meanwhile",
        parse=positive_seconds,
        metavar="SECONDS",
    )
    keepalive_timeout: float = setting(
        75.0,
        "seconds an idle keep-alive connection stays open (keep it above a reverse proxy's own)",
        parse=positive_seconds,
        metavar="SECONDS",
    )
    max_connections: int | None = setting(
        None,
        "open client connections at most; past it new connections get 503 and are closed",
        parse=positive_int,
        metavar="N",
    )
    backlog: int = setting(
        2048,
        "connections the kernel holds for the gateway to accept (capped by net.core.somaxconn); "
        "a burst past it waits for SYN retries or is reset",
        parse=positive_int,
        metavar="N",
    )
    stream_stall_timeout: float = setting(
        60.0,
        "seconds a streamed response may wait for a client that stopped reading before it is cancelled",
        parse=positive_seconds,
        metavar="SECONDS",
    )
    grpc_keepalive_time: float | None = setting(
        60.0,
        "seconds between HTTP/2 pings to Triton while calls are open, so a frozen Triton is noticed (0: off)",
        parse=seconds_or_off,
        metavar="SECONDS",
    )
    shutdown_timeout: float = setting(
        30.0,
        "seconds in-flight requests get to finish after SIGTERM before they are cancelled",
        parse=seconds,
        metavar="SECONDS",
    )
    triton_metrics_url: str | None = setting(
        None, "Triton's Prometheus endpoint, merged into /metrics (e.g. http://triton:8002/metrics)", metavar="URL"
    )
    otlp_traces_endpoint: str | None = setting(
        None,
        "send OpenTelemetry traces there (OTLP over HTTP, e.g. http://otel-collector:4318/v1/traces): a span per "
        "request, the client's traceparent continued and passed on to Triton",
        metavar="URL",
    )
    response_store: str = setting(
        "sqlite:~/.local/state/triton-openai-gateway/responses.db",
        "where /v1/responses keeps stored responses: sqlite:PATH (one file, shared by --workers), "
        "redis://HOST:PORT/DB (shared by replicas; needs the [redis] extra), or none",
        metavar="URL",
    )
    response_store_ttl: float = setting(
        30 * 24 * 3600.0,
        "seconds a stored response is kept (OpenAI's default: 30 days)",
        parse=positive_seconds,
        metavar="SECONDS",
    )
    response_store_max_mb: int = setting(
        1024,
        "size bound of the SQLite response store, oldest responses dropped first (Redis: its maxmemory)",
        parse=positive_int,
        metavar="MB",
    )
    enable_kserve_frontends: bool = setting(
        False,
        "also expose Triton's KServe v2 API: HTTP /v2/... on the OpenAI port and gRPC on --kserve-grpc-port",
        kind=Kind.SWITCH,
    )
    enable_kserve_admin: bool = setting(
        False,
        "RISKY: also forward Triton's admin API (repository index/load/unload, which take model files, i.e. "
        "code; shared-memory register/status; logging; trace; statistics) to holders of --admin-api-key",
        kind=Kind.SWITCH,
    )
    triton_http_url: str = setting(
        "http://127.0.0.1:8000", "Triton's HTTP endpoint, for /v2 pass-through", metavar="URL"
    )
    kserve_grpc_port: int = setting(
        9001,
        "port of the gRPC pass-through to --triton-url (beside the OpenAI port; 8001 is Triton's own)",
        parse=port,
        metavar="PORT",
    )


def problems(settings: Settings) -> list[str]:
    """What is wrong with the settings taken together: the admin surface opens only on
    purpose, and only to a key of its own."""
    found = []
    admin_keys = set(settings.admin_api_keys)
    for wanted, name in (
        (settings.enable_model_control, "enable_model_control"),
        (settings.enable_kserve_admin, "enable_kserve_admin"),
    ):
        if wanted and not admin_keys:
            found.append(f"{flag_of(name)} needs --admin-api-key")
    if settings.enable_kserve_admin and not settings.enable_kserve_frontends:
        found.append("--enable-kserve-admin needs --enable-kserve-frontends")
    if admin_keys & set(settings.api_keys):
        found.append("--admin-api-key must differ from every --api-key")
    if any(not key.strip() for key in admin_keys):
        found.append("--admin-api-key must not be empty")
    return found


def per_model(specs: Sequence[str], model: str) -> str | None:
    """The value for `model` among "VALUE" (every model) and "MODEL=VALUE" entries."""
    value = None
    for spec in specs:
        name, sep, setting_value = spec.rpartition("=")
        if not sep:
            value = setting_value
        elif name == model:
            return setting_value
    return value
