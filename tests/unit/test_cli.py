from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, env_name, parse_settings
from gateway.settings import Settings
from gateway.triton.flavours import BackendFamily


def test_defaults() -> None:
    assert parse_settings([], environ={}) == Settings()
    assert Settings().openai_port == 9000 and Settings().http_max_input_size == 64 * 1024 * 1024


def test_flags() -> None:
    settings = parse_settings(
        [
            "--triton-url=triton:8001",
            "--host=127.0.0.1",
            "--openai-port=9100",
            "--tokenizer=/tok",
            "--tokenizer=other=/tok2",
            "--chat-template=/t.jinja",
            "--backend=tensorrtllm",
            "--default-max-tokens=32",
            "--http-max-input-size=1024",
            "--model-refresh-interval=2.5",
            "--log-level=debug",
        ],
        environ={},
    )
    assert settings == Settings(
        triton_url="triton:8001",
        host="127.0.0.1",
        openai_port=9100,
        tokenizer=("/tok", "other=/tok2"),
        chat_template=Path("/t.jinja"),
        backend=BackendFamily.TENSORRTLLM,
        default_max_tokens=32,
        http_max_input_size=1024,
        model_refresh_interval=2.5,
        log_level="DEBUG",
    )


def test_every_flag_has_an_environment_variable_in_its_help() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert f"[env: {env_name(action.option_strings[0])}]" in (action.help or "")


def test_environment_sets_defaults_and_flags_win() -> None:
    environ = {
        "GATEWAY_TRITON_URL": "envhost:8001",
        "GATEWAY_OPENAI_PORT": "9200",
        "GATEWAY_TOKENIZER": "/a, m=/b",
        "GATEWAY_BACKEND": "vllm",
    }
    settings = parse_settings([], environ=environ)
    assert settings.triton_url == "envhost:8001"
    assert settings.openai_port == 9200
    assert settings.tokenizer == ("/a", "m=/b")
    assert settings.backend is BackendFamily.VLLM
    assert parse_settings(["--openai-port=9300"], environ=environ).openai_port == 9300


@pytest.mark.parametrize(
    "argv",
    [
        ["--openai-port=70000"],
        ["--default-max-tokens=0"],
        ["--backend=tgi"],
        ["--http-max-input-size=-1"],
        ["--triton-url=ipv4:triton-a:8001,triton-b:8001"],
        ["--triton-url=dns:///triton"],
        ["--workers=0"],
        ["--grpc-channels=0"],
    ],
)
def test_bad_values_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_settings(argv, environ={})
    assert caught.value.code == 2


def test_bad_environment_choice_exits() -> None:
    with pytest.raises(SystemExit):
        parse_settings([], environ={"GATEWAY_BACKEND": "tgi"})
