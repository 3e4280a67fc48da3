"""GET /docs in a real headless Chromium (Debian's): Swagger UI, served from the installed
package with a strict Content-Security-Policy, renders every route of /openapi.json; with an
API key set, the page asks for the key instead. Nothing on the page comes from elsewhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.http.routes import openai_routes
from gateway.localtriton import LocalTriton
from gateway.settings import Settings
from tests.conftest import spawn_gateway, stop_process

# Chromium as a test browser: no first-run work, no connections of its own (the machine's
# network is closed, and a test talks to loopback only).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",  # lets the page's scripts run to the end before the DOM is taken
)


def rendered(url: str) -> str:
    """The page's DOM once its scripts have run."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None, "make test installs chromium"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(params=[(), ("--api-key=docs-key",)], ids=["open", "with-a-key"])
def gateway(request: pytest.FixtureRequest, triton: LocalTriton, tmp_path: Path) -> Iterator[tuple[str, bool]]:
    process, url = spawn_gateway(triton.grpc_url, tmp_path, *request.param)
    try:
        yield url, bool(request.param)
    finally:
        stop_process(process)


def test_the_page_renders_every_route(gateway: tuple[str, bool]) -> None:
    url, keyed = gateway
    dom = rendered(f"{url}/docs")
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    if keyed:
        assert not shown  # the document needs the key: the page asks for it
        assert re.search(r'<form id="key-form"(?![^>]*hidden)', dom), dom[:2000]
        return
    documented = {re.sub(r"\{(\w+)(?::[^}]+)?\}", r"{\1}", route.path) for route in openai_routes(Settings())}
    assert documented <= shown, documented - shown
    assert "Failed to load API definition" not in dom


def test_the_page_and_its_files_come_from_the_gateway(gateway: tuple[str, bool]) -> None:
    url, _ = gateway
    with urllib.request.urlopen(f"{url}/docs", timeout=10) as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references and all(not re.match(r"[a-z]+:|//", ref) for ref in references), references
    for reference in references:
        with urllib.request.urlopen(f"{url}/{reference}", timeout=10) as asset:
            assert asset.status == 200 and asset.read()
    for name in ("index.html", "..%2Fsetup.cfg", "swagger-ui-bundle.js.map"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/docs/{name}", timeout=10)
        assert missing.value.code == 404
