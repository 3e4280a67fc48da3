"""deploy/kubernetes against the Kubernetes JSON schemas that kubernetes-validate ships (strict:
unknown fields are errors), and against what the objects need of each other."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.cli import parse_settings
from tests.deploy.files import KUBERNETES, flag_values, load_yaml

# The oldest Kubernetes the manifests are meant for, and the newest the package knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CLUSTER_SCOPED = {"Namespace"}


def manifests() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return objects


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    return found


def gateway() -> dict[str, Any]:
    return one("Deployment", "triton-openai-gateway")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (found,) = workload["spec"]["template"]["spec"]["containers"]
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are checked here"
    return bool(selector["matchLabels"]) and selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}")
def test_matches_the_kubernetes_schema(manifest: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_rejects_an_unknown_field() -> None:
    broken = copy.deepcopy(gateway())
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(KUBERNETES / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(
        path.name for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml"
    )


def test_everything_is_in_the_one_namespace() -> None:
    namespace = one("Namespace")["metadata"]["name"]
    for manifest in manifests():
        if manifest["kind"] not in CLUSTER_SCOPED:
            assert manifest["metadata"].get("namespace") == namespace, manifest["metadata"]["name"]


def test_the_gateway_probes_its_health_routes() -> None:
    gateway_container = container(gateway())
    ports = {port["name"] for port in gateway_container["ports"]}
    assert gateway_container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway_container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert gateway_container["startupProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert gateway_container[probe]["httpGet"]["port"] in ports


def test_the_gateway_listens_where_it_is_probed_and_served() -> None:
    gateway_container = container(gateway())
    settings = parse_settings(gateway_container["args"], environ={})
    (http,) = [port for port in gateway_container["ports"] if port["name"] == "http"]
    assert http["containerPort"] == settings.openai_port
    service = one("Service", "triton-openai-gateway")
    assert {port["targetPort"] for port in service["spec"]["ports"]} == {"http"}


def test_the_gateway_has_requests_and_limits() -> None:
    resources = container(gateway())["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])


def test_the_grace_period_outlasts_the_drain() -> None:
    """SIGTERM comes after preStop; the kubelet kills at terminationGracePeriodSeconds from the start."""
    pod = gateway()["spec"]["template"]["spec"]
    gateway_container = container(gateway())
    drain = flag_values(gateway_container["args"], "--shutdown-timeout")
    assert drain, "pass --shutdown-timeout explicitly, so the grace period can be checked against it"
    assert parse_settings(gateway_container["args"], environ={}).shutdown_timeout == float(drain[0])
    command = gateway_container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(command[1]) + float(drain[0])


def test_the_gateway_balances_over_the_headless_triton_service() -> None:
    headless = one("Service", "triton-headless")
    (grpc,) = [port for port in headless["spec"]["ports"] if port["name"] == "grpc"]
    namespace = headless["metadata"]["namespace"]
    settings = parse_settings(container(gateway())["args"], environ={})
    assert settings.triton_url == f"dns:///triton-headless.{namespace}.svc.cluster.local:{grpc['port']}"


def test_the_headless_service_selects_the_triton_pods() -> None:
    headless, triton = one("Service", "triton-headless"), one("StatefulSet", "triton")
    assert headless["spec"]["clusterIP"] == "None"
    labels = triton["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items() and headless["spec"]["selector"]
    assert triton["spec"]["serviceName"] == "triton-headless"
    ports = {port["name"]: port["containerPort"] for port in container(triton)["ports"]}
    for port in headless["spec"]["ports"]:
        assert ports[port["targetPort"]] == port["port"]
    assert container(triton)["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_workload_selectors_match_their_pods(kind: str) -> None:
    for workload in (m for m in manifests() if m["kind"] == kind):
        assert selects(workload["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])


def test_the_gateway_service_selects_the_gateway_pods() -> None:
    selector = one("Service", "triton-openai-gateway")["spec"]["selector"]
    assert selector and selector.items() <= gateway()["spec"]["template"]["metadata"]["labels"].items()


def test_the_autoscaler_targets_the_gateway() -> None:
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": gateway()["metadata"]["name"]}


def test_the_disruption_budget_covers_the_gateway_and_allows_drains() -> None:
    budget = one("PodDisruptionBudget")["spec"]
    assert budget["selector"] == gateway()["spec"]["selector"]
    assert selects(budget["selector"], gateway()["spec"]["template"]["metadata"]["labels"])
    # With no more pods than minAvailable, a node drain could never evict one.
    assert one("HorizontalPodAutoscaler")["spec"]["minReplicas"] > budget["minAvailable"]
    assert gateway()["spec"]["replicas"] > budget["minAvailable"]


def test_the_gateway_reads_the_model_repository_read_only() -> None:
    pod = gateway()["spec"]["template"]["spec"]
    settings = parse_settings(container(gateway())["args"], environ={})
    (mount,) = [m for m in container(gateway())["volumeMounts"] if m["mountPath"] == str(settings.model_repository)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True and volume["persistentVolumeClaim"]["readOnly"] is True
    assert volume["persistentVolumeClaim"]["claimName"] == one("PersistentVolumeClaim")["metadata"]["name"]
