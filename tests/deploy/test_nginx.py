"""deploy/nginx as the compose proxies mount it: nginx's own configuration test for each proxy,
and the plain-HTTP one run for real on loopback in front of a stand-in gateway, to see that
an event stream is passed on chunk by chunk."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.localtriton import free_port
from gateway.settings import Settings
from tests.deploy.files import DEPLOY, NGINX, compose, interpolate

NGINX_ETC = "/etc/nginx"
UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)([\w.-]+):(\d+)", re.MULTILINE)


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("nginx is not installed; these tests need it (Debian: apt-get install nginx; .ci/run does this)")
    return found


def proxies() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image", "").startswith("nginx:")}


def make_certificate(folder: Path) -> None:
    folder.mkdir(parents=True)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed; it makes the test certificate (Debian: apt-get install openssl)")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")],
        check=True,
        capture_output=True,
    )


def lay_out(service: dict[str, Any], prefix: Path, upstreams: dict[str, int] | None = None) -> Path:
    """/etc/nginx of `service`'s container under `prefix`, from its compose mounts. A certificate
    directory that is not in the repository gets a throwaway certificate. Upstream servers, which
    are compose service names, point at 127.0.0.1 (on the port in `upstreams`, if named)."""
    for entry in service["volumes"]:
        source_text, target, *_ = interpolate(entry).split(":")
        assert target.startswith(NGINX_ETC + "/"), target
        source, destination = (DEPLOY / source_text).resolve(), prefix / target.removeprefix(NGINX_ETC + "/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        elif source.is_file():
            shutil.copyfile(source, destination)
        else:
            assert target == NGINX_ETC + "/certs", f"{source_text} is mounted but missing"
            make_certificate(destination)
    conf = prefix / "nginx.conf"
    services = set(compose()["services"])

    def local(match: re.Match[str]) -> str:
        assert match.group(2) in services, f"upstream {match.group(2)} is no compose service"
        return f"{match.group(1)}127.0.0.1:{(upstreams or {}).get(match.group(2), match.group(3))}"

    text, count = UPSTREAM_SERVER.subn(local, conf.read_text())
    assert count >= 1
    conf.write_text(text)
    # Temporary files under the prefix, so an unprivileged nginx can run too (conf.d is included in http{}).
    temp = "\n".join(
        f"{kind}_temp_path {prefix}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "conf.d" / "zz-test-temp-paths.conf").write_text(temp + "\n")
    return conf


@pytest.mark.parametrize("name", sorted(proxies()))
def test_nginx_accepts_the_configuration(name: str, tmp_path: Path) -> None:
    conf = lay_out(proxies()[name], tmp_path / "etc")
    result = subprocess.run(
        [nginx_binary(), "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(conf)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr


def test_both_proxies_share_one_proxy_setup() -> None:
    for service in proxies().values():
        sources = [interpolate(entry).split(":")[0] for entry in service["volumes"]]
        assert "./nginx/nginx.conf" in sources and "./nginx/proxy.conf" in sources
    assert len(proxies()) == 2


def test_body_limit_fits_the_gateways() -> None:
    size = re.search(r"client_max_body_size\s+(\d+)m;", (NGINX / "nginx.conf").read_text())
    assert size is not None and int(size.group(1)) * 1024 * 1024 >= Settings().http_max_input_size


def test_streams_are_not_buffered() -> None:
    proxy = (NGINX / "proxy.conf").read_text()
    for directive in ("proxy_buffering off;", "proxy_cache off;", "proxy_http_version 1.1;", 'Connection "";'):
        assert directive in proxy
    conf = (NGINX / "nginx.conf").read_text()
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", conf)
    assert timeout is not None and int(timeout.group(1)) >= 600
    assert "proxy_ignore_headers" not in proxy + conf  # X-Accel-Buffering from the gateway must count


@pytest.fixture
def running_proxy(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """The plain-HTTP proxy on a loopback port, and the port it sends to: (proxy, upstream)."""
    upstream, port = free_port(), free_port()
    conf = lay_out(proxies()["proxy"], tmp_path / "etc", {"gateway": upstream})
    server = tmp_path / "etc" / "conf.d" / "gateway.conf"
    server.write_text(server.read_text().replace("listen 80;", f"listen 127.0.0.1:{port};"))
    conf.write_text(conf.read_text().replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;"))
    # Started by root, the workers would switch to an account that cannot reach the test's files.
    main = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    log = tmp_path / "nginx.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [nginx_binary(), "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(conf), "-g", main],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.1)
        yield port, upstream
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(log.read_text())  # shown by pytest when the test failed


async def test_a_stream_passes_event_by_event(running_proxy: tuple[int, int]) -> None:
    """The stand-in gateway holds its last event back until the client has read the first: a
    proxy that held the response back (whole, or for compression) would never deliver the first."""
    port, upstream = running_proxy
    release = asyncio.Event()
    seen: dict[str, list[Any]] = {"peers": [], "request_ids": [], "sizes": []}

    async def stream(request: web.Request) -> web.StreamResponse:
        seen["sizes"].append(len(await request.read()))
        seen["peers"].append(request.transport.get_extra_info("peername") if request.transport else None)
        seen["request_ids"].append(request.headers.get("X-Request-Id"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await asyncio.wait_for(release.wait(), 10)
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", upstream).start()
    body = b"A" * (8 * 1024 * 1024)  # a base64 image's worth, past client_body_buffer_size
    try:
        async with aiohttp.ClientSession() as session:
            for request_id in ("client-id-1", None):
                release.clear()
                headers = {"X-Request-Id": request_id} if request_id else {}
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200
                    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
                    assert first == b"data: first\n\n"
                    release.set()
                    assert await asyncio.wait_for(response.content.read(), 10) == b"data: [DONE]\n\n"
    finally:
        await runner.cleanup()
    assert seen["sizes"] == [len(body), len(body)]
    assert seen["request_ids"][0] == "client-id-1" and re.fullmatch(r"[0-9a-f]{32}", seen["request_ids"][1])
    assert seen["peers"][0] == seen["peers"][1]  # one kept-alive upstream connection for both
