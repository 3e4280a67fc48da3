"""deploy/docker-compose.yml (and its TensorRT-LLM override) against the Compose Specification
schema, which check-jsonschema ships, and against what the services need of each other."""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.cli import parse_settings
from tests.deploy.files import (
    COMPOSE,
    COMPOSE_TRTLLM,
    DEPLOY,
    DOCKERFILE,
    ROOT,
    compose,
    flag_values,
    interpolate,
    load_yaml,
)

ENVIRON = {"MODEL_REPOSITORY": "/srv/model_repository"}  # the one variable without a default


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def volumes(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Short-syntax volumes as {target: (source, mode)}, variables interpolated."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = interpolate(entry, ENVIRON).split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_TRTLLM], ids=lambda path: path.name)
def test_matches_the_compose_specification(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    errors = [f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(load_yaml(path))]
    assert errors == []


def test_the_schema_rejects_a_misspelt_key(validator: jsonschema.Draft202012Validator) -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["gateway"]["depends_on"]["triton"]["conditon"] = "service_healthy"
    assert not validator.is_valid(broken)


def test_triton_is_the_ngc_vllm_image_with_its_three_ports() -> None:
    triton = compose()["services"]["triton"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-vllm-python-py3", interpolate(triton["image"]))
    assert "--model-repository=/models" in triton["command"]
    published = {int(port.rsplit(":", 1)[1]) for port in triton["ports"]}
    assert published == {8000, 8001, 8002}
    assert all(port.startswith("127.0.0.1:") for port in triton["ports"])  # not on the host's other interfaces


def test_triton_gets_the_hugging_face_token_and_a_cache_volume() -> None:
    spec = compose()
    triton = spec["services"]["triton"]
    assert triton["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
    cache = volumes(triton)[triton["environment"]["HF_HOME"]][0]
    assert cache in spec["volumes"]


def test_the_gateway_waits_for_triton_readiness() -> None:
    services = compose()["services"]
    assert services["gateway"]["depends_on"]["triton"] == {"condition": "service_healthy"}
    test = services["triton"]["healthcheck"]["test"]
    assert test[0] == "CMD" and "urlopen('http://127.0.0.1:8000/v2/health/ready'" in test[-1]
    assert "--http-port=8000" in services["triton"]["command"]


def test_the_gateway_reaches_triton_and_reads_its_repository_read_only() -> None:
    services = compose()["services"]
    gateway, triton = services["gateway"], services["triton"]
    settings = parse_settings(gateway["command"], environ={})
    grpc_port = flag_values(triton["command"], "--grpc-port")[0]
    assert settings.triton_url == f"triton:{grpc_port}"
    assert settings.model_repository is not None
    source, mode = volumes(gateway)[str(settings.model_repository)]
    assert mode == "ro" and source == volumes(triton)["/models"][0] == ENVIRON["MODEL_REPOSITORY"]


def test_the_gateway_is_built_from_deploy_dockerfile() -> None:
    build = compose()["services"]["gateway"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_docker_waits_longer_than_the_gateway_drains() -> None:
    gateway = compose()["services"]["gateway"]
    drain = flag_values(gateway["command"], "--shutdown-timeout")
    assert drain, "pass --shutdown-timeout explicitly, so stop_grace_period can be checked against it"
    assert seconds(gateway["stop_grace_period"]) > float(drain[0])


def test_tls_is_an_optional_profile_with_certificates() -> None:
    services = compose()["services"]
    assert services["proxy-tls"]["profiles"] == ["tls"]
    assert "/etc/nginx/certs" in volumes(services["proxy-tls"])
    assert [name for name, service in services.items() if "profiles" in service] == ["proxy-tls"]


def test_the_trtllm_override_swaps_only_tritons_image() -> None:
    override = load_yaml(COMPOSE_TRTLLM)
    assert set(override) == {"services"} and set(override["services"]) == {"triton"}
    assert set(override["services"]["triton"]) == {"image"}
    base_image = interpolate(compose()["services"]["triton"]["image"])
    image = interpolate(override["services"]["triton"]["image"])
    assert image == base_image.replace("-vllm-python-py3", "-trtllm-python-py3") != base_image
