"""deploy/monitoring: the Prometheus Operator ServiceMonitor scrapes the gateway's Service, and
every series the Grafana dashboard queries is one the gateway exports (Triton's own are
checked against a real tritonserver in tests/integration/test_dashboard.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client.core import Metric

from gateway.metrics import Metrics
from tests.deploy.files import KUBERNETES, MONITORING, load_yaml

SERIES = re.compile(r"\b((?:gateway|nv)_[a-z0-9_]+)")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return data


def queried_series() -> set[str]:
    return {
        name
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        for name in SERIES.findall(target["expr"])
    }


def exported_series(family: Metric) -> set[str]:
    """The series names a metric family is scraped as."""
    if family.type == "counter":
        return {f"{family.name}_total"}
    if family.type == "histogram":
        return {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return {family.name}


def test_the_service_monitor_scrapes_the_gateway_service() -> None:
    monitor = load_yaml(MONITORING / "servicemonitor.yaml")
    service = load_yaml(KUBERNETES / "gateway-service.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_the_dashboard_queries_only_what_the_gateway_exports() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    exported = {name for family in Metrics().registry.collect() for name in exported_series(family)}
    ours = {name for name in queried_series() if name.startswith("gateway_")}
    assert ours and ours <= exported, ours - exported
    covered = {"requests_total", "time_to_first_token", "inter_token_latency", "request_duration", "in_flight"}
    assert all(any(part in name for name in ours) for part in covered | {"completion_tokens", "rejected"})
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
