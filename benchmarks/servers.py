"""Real servers on this machine for tests and benchmarks: ``mlflow server`` and a PostgreSQL cluster.

Both run in their own process group and can be stopped and started again on the same port and the same store, to
measure or test what clients do while a server is down::

    with PostgresServer(tmp / "pg") as pg, MlflowServer(tmp / "mlflow", backend_uri=pg.uri("mlflow")) as server:
        client = MlflowClient(server.url)
        server.stop()   # now every request fails with "connection refused"
        server.start()  # same URL, same runs

``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keeps MLflow 3's job runner (seven huey processes) from starting: it
is not needed for tracking and halves the start-up time (about 5 s instead of 11 s on two cores).

PostgreSQL refuses to run as root, so when this process is root the cluster is created and run as ``nobody`` in
a folder it owns (``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package, found on PATH or under
``/usr/lib/postgresql/*/bin``); it listens on 127.0.0.1 only, with ``trust`` authentication for local clients.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Callable


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
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


def wait_until_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float, what: str,
                     log: Path, stop: Callable[[], None]) -> None:
    """Poll ``ready()`` until it holds; raise (with the log's tail) if ``proc`` exits, or call ``stop()`` and raise
    if ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; last log lines:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    stop()
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s; last log lines:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class MlflowServer:
    """Start/stop a real MLflow tracking server; ``url`` stays the same across restarts.

    ``backend_uri``: the backend store (default: SQLite in ``root``). ``host``: the address it binds (127.0.0.1).
    ``app_name``: an MLflow server app, e.g. ``"basic-auth"``. ``env``: extra environment for the server.
    ``allowed_hosts``: MLflow's Host-header allow list (its default takes localhost and private networks only).
    ``workers``: server processes (1: the tests' default, cheapest to start).
    """

    def __init__(self, root: Path, port: int | None = None, start_timeout: float = 60.0, *,
                 backend_uri: str | None = None, host: str = "127.0.0.1", app_name: str | None = None,
                 env: dict[str, str] | None = None, allowed_hosts: str | None = None, workers: int = 1) -> None:
        self.root = Path(root).resolve()
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.host = host
        self.app_name = app_name
        self.allowed_hosts = allowed_hosts
        self.workers = workers
        self.extra_env = dict(env or {})
        self.db = self.root / "mlflow.db"
        self.backend_uri = backend_uri or f"sqlite:///{self.db}"
        self.artifacts = self.root / "artifacts"
        self.log_path = self.root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL on this machine (127.0.0.1 when it binds every address)."""
        return f"http://{self._local_host}:{self.port}"

    @property
    def _local_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

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
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONUNBUFFERED="1", **self.extra_env)
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
               "--artifacts-destination", str(self.artifacts), "--host", self.host, "--port", str(self.port),
               "--workers", str(self.workers), *(["--app-name", self.app_name] if self.app_name else []),
               *(["--allowed-hosts", self.allowed_hosts] if self.allowed_hosts else [])]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, cwd=self.root, start_new_session=True)
        wait_until_ready(self._proc, self.healthy, self.start_timeout, f"mlflow server at {self.url}", self.log_path,
                         self.stop)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and wait until the port refuses connections."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_group(proc, timeout)
        deadline = time.monotonic() + timeout
        while _accepting(self._local_host, self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server's process group: no clean shutdown, as when its machine fails."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)

    def restart(self) -> MlflowServer:
        self.stop()
        return self.start()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def postgres_bin(name: str) -> str | None:
    """The path of a PostgreSQL server program (``initdb``, ``pg_ctl``, ``postgres``), or None if not installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL cluster in ``root`` on 127.0.0.1 and a free port; :meth:`uri` names a database."""

    def __init__(self, root: Path, port: int | None = None, start_timeout: float = 60.0) -> None:
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log_path = self.root / "postgres.log"
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.user = "aircolor"
        self._run_as = "nobody" if os.geteuid() == 0 else None
        self._proc: subprocess.Popen[bytes] | None = None

    def uri(self, database: str) -> str:
        """A SQLAlchemy URI for ``database`` with the psycopg 3 driver (SQLAlchemy 2.1's default for ``postgresql://``,
        named here so that SQLAlchemy 2.0 picks it too); :meth:`create_database` creates the database."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=120, user=self._run_as,
                              cwd=self.root, env=dict(os.environ, LC_ALL="C.UTF-8"))

    def _initdb(self) -> None:
        initdb = postgres_bin("initdb")
        if initdb is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb): apt-get install postgresql")
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._run_as is not None and not all(os.stat(p).st_mode & 0o001 for p in self.root.parents):
            raise RuntimeError(f"{self.root}: PostgreSQL runs as {self._run_as} here, which cannot reach this folder; "
                               "use one whose parents are world-traversable (e.g. tempfile.mkdtemp(dir='/tmp'))")
        if self._run_as is not None:
            owner = pwd.getpwnam(self._run_as)
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        done = self._cmd(initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> PostgresServer:
        """initdb (first time), start ``postgres`` and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        postgres = postgres_bin("postgres")
        assert postgres is not None
        log = open(self.log_path, "ab")
        if self._run_as is not None:
            owner = pwd.getpwnam(self._run_as)
            os.chown(self.log_path, owner.pw_uid, owner.pw_gid)
        self._proc = subprocess.Popen(
            [postgres, "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.sockets),
             "-c", "max_connections=300", "-c", "fsync=on"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, user=self._run_as, cwd=self.root,
            start_new_session=True)
        log.close()
        wait_until_ready(self._proc, self._ready, self.start_timeout, f"postgres on port {self.port}",
                         self.log_path, self.stop)
        return self

    def _ready(self) -> bool:
        if not _accepting("127.0.0.1", self.port):
            return False
        return self._psql("postgres", "SELECT 1").returncode == 0

    def _psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        psql = shutil.which("psql") or postgres_bin("psql") or "psql"
        return self._cmd(psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-qAtc", sql)

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its URI."""
        if not name.isidentifier():
            raise ValueError(f"database name must be an identifier, got {name!r}")
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.stdout.strip() != "1":
            done = self._psql("postgres", f'CREATE DATABASE "{name}"')
            if done.returncode != 0:
                raise RuntimeError(f"CREATE DATABASE {name} failed: {done.stderr.strip()}")
        return self.uri(name)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, then exit), SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            stop_group(proc, timeout)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
