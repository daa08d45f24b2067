"""A real ``mlflow server`` for tests: SQLite store and artifacts in a folder, on 127.0.0.1 and a free port.

It runs in its own process group (uvicorn and any helpers die with it) and can be stopped and started again on the
same port and the same store, to test what clients do while the server is down::

    with MlflowServer(tmp_path / "mlflow") as server:
        client = MlflowClient(server.url)
        server.stop()   # now every request fails with "connection refused"
        server.start()  # same URL, same runs

``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keeps MLflow 3's job runner (seven huey processes) from starting: it
is not needed for tracking and halves the start-up time (about 5 s instead of 11 s on two cores).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """Start/stop a real MLflow tracking server; ``url`` stays the same across restarts."""

    def __init__(self, root: Path, port: int | None = None, start_timeout: float = 60.0) -> None:
        self.root = Path(root).resolve()
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.db = self.root / "mlflow.db"
        self.artifacts = self.root / "artifacts"
        self.log_path = self.root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_uri(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200 and resp.read().strip() == b"OK"
        except OSError:
            return False

    def start(self) -> MlflowServer:
        """Start the server and wait until ``GET /health`` says OK (the log is in ``root/server.log``)."""
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONUNBUFFERED="1")
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
               "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {self._proc.returncode}; "
                                   f"last log lines:\n{self._tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy at {self.url} after {self.start_timeout:.0f} s; "
                           f"last log lines:\n{self._tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and wait until the port refuses connections."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # helpers left in the group (if any) go too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while self._accepting() and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> MlflowServer:
        self.stop()
        return self.start()

    def _accepting(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
