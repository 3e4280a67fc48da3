"""Command line, environment and config file, all derived from gateway.settings: every setting
is a flag, an environment variable GATEWAY_<FLAG> and a key of a --config file (TOML or YAML).
A flag wins over the environment, which wins over the file. A bad value anywhere is one line
naming the flag, variable or key, and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from gateway.errors import StartupError
from gateway.logs import configure_logging, stop_logging
from gateway.settings import Kind, Option, Settings, flag_of, option_of, problems, split_csv
from gateway.version import VERSION

ENV_PREFIX = "GATEWAY_"
PROG = "triton-openai-gateway"
CONFIG_ENV = "GATEWAY_CONFIG"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class UsageError(Exception):
    """A setting that cannot be taken; the message names where it came from."""


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def config_key(name: str) -> str:
    """A setting's key in a config file: its flag without the dashes in front."""
    return flag_of(name).lstrip("-")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` for argparse, which reports an ArgumentTypeError's text."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc) or "not a valid value") from None

    return convert


def _csv_of(parse: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    return lambda text: tuple(parse(item) for item in split_csv(text))


def _help(name: str, option: Option, default: Any) -> str:
    text = option.help
    if option.choices:
        text += f" ({', '.join(option.choices)})"
    if default not in (None, False, ()):
        shown = ",".join(default) if isinstance(default, tuple) else default
        text += f" (default: {shown})"
    if option.kind is Kind.REPEATED:
        text += "; repeatable (env: comma-separated)"
    elif option.kind is Kind.CSV:
        text += " (comma-separated)"
    elif option.kind is Kind.TRIPLES:
        text += "; repeatable (env: 'A B C' entries separated by ';')"
    return f"{text} [env: {env_name(flag_of(name))}]"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="An OpenAI-compatible HTTP gateway in front of a Triton Inference Server (gRPC).",
        argument_default=argparse.SUPPRESS,  # what was not given stays out, so the environment can fill it
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"a TOML (.toml) or YAML (.yaml, .yml) file of settings, keyed by flag name [env: {CONFIG_ENV}]",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {VERSION}", help="print the version and exit")
    for spec in dataclasses.fields(Settings):
        option = option_of(spec.name)
        kwargs: dict[str, Any] = {"dest": spec.name, "help": _help(spec.name, option, spec.default)}
        if option.kind is Kind.SWITCH:
            kwargs["action"] = "store_true"
        elif option.kind is Kind.REPEATED:
            kwargs.update(action="append", type=_checked(option.parse), metavar=option.metavar)
        elif option.kind is Kind.CSV:
            kwargs.update(type=_checked(_csv_of(option.parse)), metavar=option.metavar)
        elif option.kind is Kind.TRIPLES:
            kwargs.update(action="append", nargs=3, metavar=option.metavar)
        else:
            shown = "{" + ",".join(option.choices) + "}" if option.choices else spec.name.split("_")[-1].upper()
            kwargs.update(type=_checked(option.parse), metavar=option.metavar or shown)
        parser.add_argument(flag_of(spec.name), **kwargs)
    return parser


def _from_text(option: Option, text: str) -> Any:
    """A setting's value from its environment variable's text."""
    if option.kind is Kind.SWITCH:
        lowered = text.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ValueError(f"say one of {', '.join(_TRUE + _FALSE[:-1])}")
        return lowered in _TRUE
    if option.kind in (Kind.REPEATED, Kind.CSV):
        return tuple(option.parse(item) for item in split_csv(text))
    if option.kind is Kind.TRIPLES:
        entries = [entry.split() for entry in text.split(";") if entry.strip()]
        if any(len(entry) != 3 for entry in entries):
            raise ValueError("each entry is 'APIS HEADER VALUE'")
        return tuple(option.parse(*entry) for entry in entries)
    return option.parse(text)


def _from_file(option: Option, value: Any) -> Any:
    """A setting's value from its config-file value (already of the type its kind takes)."""
    if option.kind is Kind.SWITCH:
        return bool(value)
    if option.kind in (Kind.REPEATED, Kind.CSV):
        items = split_csv(value) if isinstance(value, str) else value
        return tuple(option.parse(str(item)) for item in items)
    if option.kind is Kind.TRIPLES:
        return tuple(option.parse(*entry) for entry in value)
    return option.parse(str(value))


def _from_flag(option: Option, value: Any) -> Any:
    if option.kind is Kind.REPEATED:
        return tuple(value)
    if option.kind is Kind.TRIPLES:
        return tuple(option.parse(*entry) for entry in value)
    return value


_FILE_TYPES: dict[Kind, Any] = {
    Kind.VALUE: str | int | float,
    Kind.SWITCH: bool,
    Kind.REPEATED: list[str] | str,
    Kind.CSV: list[str] | str,
    Kind.TRIPLES: list[tuple[str, str, str]],
}


def _config_struct() -> type[msgspec.Struct]:
    """The shape of a config file: every setting optional, under its flag name; nothing else."""
    fields = [(spec.name, _FILE_TYPES[option_of(spec.name).kind] | None, None) for spec in dataclasses.fields(Settings)]
    renames = {spec.name: config_key(spec.name) for spec in dataclasses.fields(Settings)}
    return msgspec.defstruct("ConfigFile", fields, kw_only=True, forbid_unknown_fields=True, rename=renames)


def read_config(path: Path) -> dict[str, Any]:
    """The settings a config file gives, by field name."""
    decoders: dict[str, Callable[..., Any]] = {
        ".toml": msgspec.toml.decode,
        ".yaml": msgspec.yaml.decode,
        ".yml": msgspec.yaml.decode,
    }
    decode = decoders.get(path.suffix.lower())
    if decode is None:
        raise UsageError(f"--config {path}: name a .toml, .yaml or .yml file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        decoded = decode(raw, type=_config_struct())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UsageError(f"--config {path}: {exc}") from None
    return {name: value for name in decoded.__struct_fields__ if (value := getattr(decoded, name)) is not None}


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from flags, the environment and a config file; a bad one prints one line
    and exits with status 2."""
    try:
        return _settings(argv, dict(os.environ) if environ is None else environ)
    except UsageError as exc:
        print(f"{PROG}: error: {exc} (see --help)", file=sys.stderr)
        raise SystemExit(2) from None


def _settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    given = vars(build_parser().parse_args(argv))
    config = given.pop("config", None) or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    from_file = read_config(config) if config is not None else {}
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(Settings):
        option, name = option_of(spec.name), spec.name
        variable = env_name(flag_of(name))
        try:
            if name in given:
                values[name] = _from_flag(option, given[name])
            elif variable in environ:
                values[name] = _from_text(option, environ[variable])
            elif name in from_file:
                values[name] = _from_file(option, from_file[name])
        except ValueError as exc:
            source = (
                flag_of(name)
                if name in given
                else f"{variable}"
                if variable in environ
                else f"{config_key(name)} in {config}"
            )
            raise UsageError(f"{source}: {exc or 'not a valid value'}") from None
    settings = Settings(**values)
    found = problems(settings)
    if found:
        raise UsageError(found[0])
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging(settings.log_level, settings.log_format)
    try:
        if settings.workers > 1:
            from gateway.workers import supervise

            supervise(settings)
            return
        from gateway.app import run

        run(settings)
    except StartupError as exc:
        stop_logging()  # the queued lines first: the error is the last line
        print(f"{PROG}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        stop_logging()
