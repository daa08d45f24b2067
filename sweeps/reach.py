"""The tracking URI that trials get: one they can reach from whichever node Ray places them on.

A loopback URI (``http://127.0.0.1:5000``, ``localhost``, ``[::1]``) names the server on the driver's machine, but a
trial on another node would talk to its own loopback, where nothing listens, and everything it logs would pile up
in spools. So, before any trial starts:

* one node, or every node at the driver's address, and no autoscaler: the URI stays;
* nodes at other addresses, or an autoscaler that may add some: the host becomes the driver node's address as Ray
  sees it, provided the server answers there (it must listen on that address or on 0.0.0.0). If it does not, the URI
  stays only when every other node is on this machine's loopback (``ray start --node-ip-address=127.0.0.2``);
  otherwise the sweep is refused with one line that says how to give a reachable URI.

Non-HTTP URIs are left alone: a ``sqlite:///`` file or ``file:`` folder is reached through the shared disk (which
:mod:`aircolor.tracking.uri` already checks), and a database URI names its own host.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from aircolor.errors import UsageError
from aircolor.tracking import redact_uri


@dataclass(frozen=True)
class ClusterView:
    """What the decision needs to know about the Ray cluster."""

    driver_ip: str
    node_ips: tuple[str, ...]  # the alive nodes' addresses
    autoscaling: bool = False  # an autoscaler may add nodes

    @property
    def other_ips(self) -> list[str]:
        """Addresses of nodes that are not the driver's."""
        return sorted({ip for ip in self.node_ips if ip != self.driver_ip})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost (any case, with or without a trailing dot)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def answers(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Does something accept TCP connections at ``host:port``?"""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def reachable_tracking_uri(uri: str, cluster: ClusterView, *,
                           probe: Callable[[str, int], bool] = answers) -> str:
    """``uri`` as trials on any node of ``cluster`` reach it; raises :class:`UsageError` when no such URI is known."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or not is_loopback(parts.hostname):
        return uri
    others = cluster.other_ips
    if not others and not cluster.autoscaling:
        return uri  # one node: the driver's loopback is every trial's
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not is_loopback(cluster.driver_ip) and probe(cluster.driver_ip, port):
        host = f"[{cluster.driver_ip}]" if ":" in cluster.driver_ip else cluster.driver_ip
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if not cluster.autoscaling and all(is_loopback(ip) for ip in others):
        return uri  # extra nodes on this machine's loopback (127.0.0.2, ...) reach 127.0.0.1 too
    why = f"nodes at {', '.join(others)} too" if not cluster.autoscaling else "nodes an autoscaler may add"
    where = (f"no server answers at {cluster.driver_ip}:{port}, this node's address"
             if not is_loopback(cluster.driver_ip) else f"Ray knows this node only as {cluster.driver_ip}")
    raise UsageError(f"tracking URI {redact_uri(uri)} is loopback, but trials run on {why}, and {where}; start the "
                     "server on an address the other nodes reach (mlflow server --host <private address>) and pass "
                     f"it with --tracking-uri http://<private address>:{port} (or MLFLOW_TRACKING_URI)")


def cluster_view(ray: Any) -> ClusterView:
    """The connected Ray cluster as :func:`reachable_tracking_uri` needs it."""
    node_ips = tuple(n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive"))
    driver_ip = ray.util.get_node_ip_address()
    return ClusterView(driver_ip=driver_ip, node_ips=node_ips, autoscaling=_autoscaler_running())


def _autoscaler_running(bootstrap: Path = Path("~/ray_bootstrap_config.yaml")) -> bool:
    """Does an autoscaler manage this cluster? ``ray up`` leaves its cluster config on the head as
    ``~/ray_bootstrap_config.yaml`` and starts the autoscaler with it; a cluster that may add workers says so with
    ``max_workers`` (default 2) there. (A plain ``ray start --head`` runs a read-only monitor that adds nothing.)"""
    path = bootstrap.expanduser()
    if not path.is_file():
        return False
    try:
        import yaml

        config = yaml.safe_load(path.read_text()) or {}
        return int(config.get("max_workers", 2)) > 0
    except Exception:  # unreadable: assume it may scale, the safe side
        return True


def trial_tracking_uri(uri: str, ray: Any) -> str:
    """The URI to hand to this sweep's trials (see the module doc); prints one line when it rewrote ``uri``."""
    reachable = reachable_tracking_uri(uri, cluster_view(ray))
    if reachable != uri:
        print(f"aircolor sweep: trials run on other nodes too, so they log to {redact_uri(reachable)} "
              f"(this node's address) instead of {redact_uri(uri)}", flush=True)
    return reachable
