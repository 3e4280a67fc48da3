"""Run a real tritonserver on this machine from the `nvidia-pytriton` wheel (CPU build).

Used by `make run`, the integration tests and the benchmarks. It assembles a backend
directory (the wheel's Python backend, plus Python-based backends such as the stand-in
`vllm` one), starts tritonserver on free loopback ports with a unique id, waits until that
very server is ready, and stops it again, killing it if it will not go.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.processes import die_with_parent

_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TritonWheel:
    """Where the pieces of the nvidia-pytriton wheel are."""

    root: Path

    @classmethod
    def locate(cls) -> TritonWheel:
        try:
            import pytriton
        except ImportError as exc:
            raise TritonStartError(
                "nvidia-pytriton is not installed; run `make install` (it ships tritonserver)"
            ) from exc
        return cls(Path(pytriton.__file__).resolve().parent)

    @property
    def server_binary(self) -> Path:
        return self.root / "tritonserver" / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "tritonserver" / "backends" / "python"

    @property
    def stub(self) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return self.root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"

    @property
    def libs(self) -> Path:
        return self.root.parent / "nvidia_pytriton.libs"


def build_backend_directory(target: Path, wheel: TritonWheel, python_backends: Sequence[Path]) -> None:
    """Lay out `target` as tritonserver's --backend-directory.

    `python/` links to the wheel. Each Python-based backend (a folder holding `model.py`)
    gets real copies of the Python backend's files: Triton refuses symlinked ones there.
    """
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in _BACKEND_FILES:
        (python_dir / name).symlink_to(wheel.python_backend / name)
    (python_dir / "triton_python_backend_stub").symlink_to(wheel.stub)
    for source in python_backends:
        backend_dir = target / source.name
        backend_dir.mkdir()
        for name in _BACKEND_FILES:
            shutil.copy2(wheel.python_backend / name, backend_dir / name)
        shutil.copy2(wheel.stub, backend_dir / "triton_python_backend_stub")
        shutil.copy2(source / "model.py", backend_dir / "model.py")


@dataclass
class LocalTriton:
    """One tritonserver process on loopback, with its own backend directory and log."""

    model_repository: Path
    python_backends: Sequence[Path] = ()
    python_path: Sequence[Path] = ()  # importable by the Python models (PYTHONPATH)
    model_control_mode: str = "none"
    load_models: Sequence[str] = ()
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    log_verbose: int = 0
    log_path: Path | None = None
    extra_args: Sequence[str] = ()  # more tritonserver flags (e.g. --trace-config)
    server_id: str = field(default_factory=lambda: f"local-triton-{uuid.uuid4().hex[:12]}")
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _workdir: Path | None = field(default=None, init=False)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and return once it is ready; raise TritonStartError otherwise."""
        wheel = TritonWheel.locate()
        self._workdir = Path(tempfile.mkdtemp(prefix="local-triton-"))
        backends = self._workdir / "backends"
        build_backend_directory(backends, wheel, self.python_backends)
        if self.log_path is None:
            self.log_path = self._workdir / "tritonserver.log"
        for attempt in range(3):
            self._pick_ports(fresh=attempt > 0)
            self._spawn(wheel, backends)
            try:
                self._wait_ready(timeout)
                return
            except TritonStartError:
                log = self.read_log()
                self.stop()
                if "already in use" in log and attempt < 2:
                    continue
                raise TritonStartError(f"tritonserver did not start:\n{log[-12000:]}") from None

    def _pick_ports(self, fresh: bool) -> None:
        if fresh or not self.grpc_port:
            self.grpc_port = free_port()
        if fresh or not self.http_port:
            self.http_port = free_port()
        if fresh or not self.metrics_port:
            self.metrics_port = free_port()

    def _spawn(self, wheel: TritonWheel, backends: Path) -> None:
        command = [
            str(wheel.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--id={self.server_id}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--exit-timeout-secs=5",
            f"--log-verbose={self.log_verbose}",
            f"--model-control-mode={self.model_control_mode}",
        ]
        command += [f"--load-model={name}" for name in self.load_models]
        command += list(self.extra_args)
        assert self.log_path is not None
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_server_environment(wheel, self.python_path),
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no threads involved
        )
        log_file.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise TritonStartError("tritonserver exited")
            if self._answers_as_itself() and self._http_status("/v2/health/ready") == 200:
                return
            time.sleep(0.1)
        raise TritonStartError("tritonserver was not ready in time")

    def _answers_as_itself(self) -> bool:
        """True when the server on our port is ours (a stale one may hold the port)."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2", timeout=1) as response:
                return bool(json.load(response).get("name") == self.server_id)
        except (OSError, ValueError):
            return False

    def _http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"{self.http_url}{path}", timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def read_log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL; remove what a killed server leaves behind."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            _reap_stubs(self._workdir / "backends")
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)

    def cleanup(self) -> None:
        """Stop and remove the working directory (log included)."""
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @contextlib.contextmanager
    def running(self, timeout: float = 120.0) -> Iterator[LocalTriton]:
        self.start(timeout)
        try:
            yield self
        finally:
            self.cleanup()


def _reap_stubs(backends: Path) -> None:
    """Kill the Python-backend stubs a killed server left behind (a stub busy with a request
    does not notice its server is gone) and remove their shared-memory regions."""
    prefix = str(backends) + os.sep
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            arguments = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not arguments[0].decode(errors="replace").startswith(prefix):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(proc.name), signal.SIGKILL)
        if len(arguments) > 2:  # stub MODEL_PATH SHM_REGION ...
            Path("/dev/shm", arguments[2].decode(errors="replace")).unlink(missing_ok=True)


def _server_environment(wheel: TritonWheel, python_path: Sequence[Path]) -> dict[str, str]:
    """PATH and LD_LIBRARY_PATH so the stub runs this interpreter with its packages."""
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([*map(str, python_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [libdir, str(wheel.libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    return env
