from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, env_name, parse_settings
from gateway.model_info import BackendFamily
from gateway.settings import Settings


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
            "--routing-header=X-Session-ID",
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
        routing_header="X-Session-ID",
    )


def test_every_flag_has_an_environment_variable_in_its_help() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
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
        ["--routing-header=X Session"],
        ["--routing-header=X-Session:"],
    ],
)
def test_bad_values_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_settings(argv, environ={})
    assert caught.value.code == 2


def test_bad_environment_choice_exits() -> None:
    with pytest.raises(SystemExit):
        parse_settings([], environ={"GATEWAY_BACKEND": "tgi"})


def test_a_config_file_sets_what_flags_and_the_environment_do_not(tmp_path: Path) -> None:
    toml = tmp_path / "gateway.toml"
    toml.write_text(
        'triton-url = "triton:8001"\nopenai-port = 9100\napi-key = ["k1", "k2"]\nallow-remote-images = true\n'
        'openai-restricted-api = [["inference,health", "X-Team", "a"]]\nrequest-timeout = 0\n'
    )
    settings = parse_settings([f"--config={toml}"], environ={})
    assert (settings.triton_url, settings.openai_port, settings.api_keys) == ("triton:8001", 9100, ("k1", "k2"))
    assert settings.allow_remote_images and settings.request_timeout is None
    assert settings.restricted_apis == ((("inference", "health"), "X-Team", "a"),)
    environ = {"GATEWAY_CONFIG": str(toml), "GATEWAY_OPENAI_PORT": "9200"}
    assert parse_settings([], environ=environ).openai_port == 9200  # the environment wins over the file
    assert parse_settings(["--openai-port=9300"], environ=environ).openai_port == 9300  # and a flag over both
    yaml = tmp_path / "gateway.yaml"
    yaml.write_text("tokenizer: [/a, m=/b]\ncors-allowed-origins: https://a.example, https://b.example\n")
    settings = parse_settings([f"--config={yaml}"], environ={})
    assert settings.tokenizer == ("/a", "m=/b")
    assert settings.cors_allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("argv", "environ", "file", "named"),
    [
        (["--openai-port=abc"], {}, None, "--openai-port"),
        ([], {"GATEWAY_OPENAI_PORT": "abc"}, None, "GATEWAY_OPENAI_PORT"),
        ([], {"GATEWAY_ALLOW_REMOTE_IMAGES": "maybe"}, None, "GATEWAY_ALLOW_REMOTE_IMAGES"),
        ([], {"GATEWAY_OPENAI_RESTRICTED_API": "inference X-A"}, None, "GATEWAY_OPENAI_RESTRICTED_API"),
        ([], {}, 'openai-port = "nine"\n', "openai-port"),
        ([], {}, 'triton-urll = "x"\n', "triton-urll"),
        ([], {}, "openai-port = \n", "gateway.toml"),
        (["--tool-call-parser=m=nope"], {}, None, "--tool-call-parser"),
        (["--enable-model-control"], {}, None, "--admin-api-key"),
    ],
)
def test_a_bad_value_anywhere_is_one_line_naming_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environ: dict,
    file: str | None,
    named: str,  # type: ignore[type-arg]
) -> None:
    if file is not None:
        (tmp_path / "gateway.toml").write_text(file)
        argv = [*argv, f"--config={tmp_path / 'gateway.toml'}"]
    with pytest.raises(SystemExit) as caught:
        parse_settings(argv, environ=environ)
    assert caught.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("triton-openai-gateway: error: ") and named in line


def test_every_setting_is_a_flag_a_variable_and_a_file_key() -> None:
    import dataclasses

    from gateway.cli import config_key
    from gateway.settings import flag_of

    parser = build_parser()
    flags = {string for action in parser._actions for string in action.option_strings}
    for spec in dataclasses.fields(Settings):
        assert flag_of(spec.name) in flags
        assert config_key(spec.name) == flag_of(spec.name).removeprefix("--")


def test_the_readme_lists_every_flag() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = set(re.findall(r"^\| `(--[a-z0-9-]+)", readme, re.MULTILINE))
    flags = {string for action in build_parser()._actions for string in action.option_strings} - {"-h", "--help"}
    assert flags == rows
