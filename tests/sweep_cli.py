"""The sweep tests' shared helpers: the ``aircolor`` CLI against the session's Ray cluster and an MLflow server.

Trials of these tests skip the Inception metrics (FID/IS/KID) unless a test asks for them: the sweeps optimise
Delta E 2000, a real Inception forward pass at 299 px is more than half of a smoke trial's time on a CPU, and
torch-fidelity is checked on its own (tests/test_metrics.py) and in the one session sweep that keeps them
(the ``smoke_sweep`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"
NO_INCEPTION = ["metrics.fid=false", "metrics.isc=false", "metrics.kid=false"]


def one_seed(space: str, folder: Path, choices: dict[str, list] | None = None) -> Path:
    """A copy of ``search_spaces/SPACE`` with one seed per configuration (half the trials of the shipped two-seed
    grids), for the tests whose subject is not how seeds multiply a grid; ``choices`` replaces factors' choices."""
    import yaml

    raw = yaml.safe_load((SPACES / space).read_text())
    raw["seeds"] = 1
    for factor, values in (choices or {}).items():
        raw["factors"][factor]["choice"] = values
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"one-seed-{space}"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def sweep_args(name: str, prepared: Path, storage: Path, *extra: str, inception: bool = False) -> list[str]:
    """``sweep run`` options of a smoke sweep on 2 CPUs, scored by Delta E 2000 (see the module docstring)."""
    return ["--name", name, "--smoke", "--metric", "delta_e2000", "--storage", str(storage),
            "--cpus-per-trial", "1", "--max-concurrent", "2", f"data.root={prepared}",
            *([] if inception else NO_INCEPTION), *extra]


def cli(args: list[str], ray_cluster, mlflow_uri: str, env_extra: dict | None = None, timeout: int = 900,
        background: bool = False, fault: str | None = None):
    """``aircolor ARGS`` against the session's Ray and ``mlflow_uri``; ``fault``: see tests/fault_seam.py."""
    env = dict(ray_cluster["env"], MLFLOW_TRACKING_URI=mlflow_uri, RAY_ADDRESS=ray_cluster["address"],
               PYTHONUNBUFFERED="1", **(env_extra or {}))
    seam = [str(Path(__file__).with_name("fault_seam.py")), fault] if fault else ["-m", "aircolor"]
    cmd = [sys.executable, *seam, *args]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def children(client, experiment: str) -> tuple[object, list]:
    """The sweep's parent MLflow run and its child (trial) runs."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("aircolor.kind") == "sweep"]
    assert len(parents) == 1
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], kids
