"""Ray nodes the tests start, and stop, themselves: ``ray start --block`` in its own process group.

``ray stop --force`` would kill every Ray process of the user on this machine (their own clusters too), so the tests
never call it. Each node here is one ``ray start --block`` process: on SIGTERM it stops the processes it started
(GCS, raylet, dashboard and the workers under them), and whatever is left in its process group is killed after it.

    head = RayNode.head(temp_dir, port=6390, env=env)             # ready when start() returns
    extra = RayNode.worker(head.address, temp_dir2, env=env, node_ip="10.0.0.5")
    extra.stop(); head.stop()
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

from benchmarks.servers import stop_group, wait_until_ready


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


class RayNode:
    """One Ray node as a child process group of the tests."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def head(cls, temp_dir: str, port: int, dashboard_port: int, env: dict[str, str], num_cpus: int = 2) -> RayNode:
        args = ["--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
                f"--temp-dir={temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}", "--disable-usage-stats"]
        node = cls(args, env, Path(temp_dir) / "ray-start.log")
        node.address = f"127.0.0.1:{port}"
        return node

    @classmethod
    def worker(cls, address: str, temp_dir: str, env: dict[str, str], node_ip: str = "127.0.0.1",
               num_cpus: int = 1, resources: str | None = None) -> RayNode:
        args = [f"--address={address}", f"--node-ip-address={node_ip}", f"--num-cpus={num_cpus}", "--num-gpus=0",
                f"--temp-dir={temp_dir}", "--disable-usage-stats", *([f"--resources={resources}"] if resources else [])]
        node = cls(args, env, Path(temp_dir) / "ray-start.log")
        node.address = address
        return node

    def start(self, ready: Callable[[], bool], timeout_s: float = 180.0) -> RayNode:
        """Start the node and wait until ``ready()`` (e.g. the GCS port answers, or the cluster counts the node)."""
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen([_ray_bin(), "start", *self.args, "--block"], env=self.env, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until_ready(self._proc, ready, timeout_s, "ray start", Path(self.log), self.stop)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM ``ray start --block`` (it stops its node's processes), then kill what is left of its group."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, timeout_s)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def serves(url: str) -> bool:
    """Does ``GET url`` answer 200 (e.g. the dashboard's job server at ``/api/version``)?"""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
