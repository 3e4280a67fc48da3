"""The Grafana dashboard's Triton series are ones a real tritonserver exports."""

from __future__ import annotations

import urllib.request

from gateway.localtriton import LocalTriton
from tests.deploy.test_monitoring import queried_series


def test_the_dashboard_queries_series_triton_exports(triton: LocalTriton) -> None:
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as response:
        text = response.read().decode()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    theirs = {name for name in queried_series() if name.startswith("nv_")}
    assert theirs and theirs <= exported, theirs - exported
