"""cluster.yaml is a real Ray cluster launcher configuration: parsed and checked by Ray's own validator."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_ray_accepts_the_cluster_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(load()))
    validate_config(config)  # raises on a schema error


def test_head_and_an_autoscaling_gpu_worker_type():
    config = load()
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [name for name, t in types.items() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu_types, "no node type declares a GPU"
    worker = types[gpu_types[0]]
    assert worker["max_workers"] > worker["min_workers"] >= 0, "the GPU pool must be able to scale"
    assert types[config["head_node_type"]].get("resources", {}).get("GPU", 0) == 0


def test_nodes_install_the_project_and_share_storage_and_mlflow():
    config = load()
    setup = "\n".join(config["setup_commands"])
    mounts = config["file_mounts"]
    project = [remote for remote, local in mounts.items() if local == "."]
    assert project, "the project (with search_spaces/) is not mounted on the nodes"
    assert f"pip install -e '{project[0]}[cluster]'" in setup  # the PostgreSQL driver and MLflow's auth app
    assert "AIRCOLOR_SWEEP_STORAGE=/mnt/shared" in setup
    head = "\n".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "mlflow server" in head and "--port 5000" in head
    assert any("ray start --address=$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])


def _run_setup(commands: list[str], tmp_path: Path, env: dict[str, str]) -> str:
    """Run the lines of ``commands`` that write ~/.bashrc or the head-ip file in bash, with HOME in tmp_path."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".bashrc").write_text("export MLFLOW_TRACKING_URI=http://stale:5000\n")
    for cmd in commands:
        if ".bashrc" in cmd or ("aircolor-head-ip" in cmd and "hostname" in cmd):
            done = subprocess.run(["bash", "-c", cmd], env={"PATH": os.environ["PATH"], **env, "HOME": str(home)},
                                  capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"{cmd}: {done.stderr}"
    return (home / ".bashrc").read_text()


def test_every_node_gets_the_head_private_address_as_mlflow_uri(tmp_path):
    """The commands run for real: a worker's URI comes from the launcher's RAY_HEAD_IP, the head's from its own
    first address, never 127.0.0.1 (the bug of 'ray get-head-ip' without its config file argument)."""
    config = load()
    everything = yaml.safe_dump(config)
    assert "get-head-ip" not in everything.replace("ray get-head-ip cluster.yaml", "")
    bashrc = _run_setup(config["worker_setup_commands"], tmp_path / "w", {"RAY_HEAD_IP": "10.0.3.7"})
    assert bashrc.count("MLFLOW_TRACKING_URI") == 1 and "export MLFLOW_TRACKING_URI=http://10.0.3.7:5000" in bashrc
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "hostname").write_text("#!/bin/sh\necho '10.0.1.5 172.17.0.1 '\n")
    (fake_bin / "hostname").chmod(0o755)
    bashrc = _run_setup(config["head_setup_commands"], tmp_path / "h",
                        {"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert bashrc.count("MLFLOW_TRACKING_URI") == 1 and "export MLFLOW_TRACKING_URI=http://10.0.1.5:5000" in bashrc
    shared = _run_setup(config["setup_commands"], tmp_path / "s", {})
    assert shared.count("AIRCOLOR_SWEEP_STORAGE") == 1


def test_nothing_listens_on_a_public_address_and_mlflow_runs_on_postgresql():
    config = load()
    head = "\n".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "--host $(cat ~/aircolor-head-ip)" in head
    assert "--backend-store-uri postgresql+psycopg://aircolor@127.0.0.1:5432/mlflow" in head
    assert "sqlite" not in head
    setup = "\n".join(config["head_setup_commands"])
    assert "apt-get install -y postgresql" in setup and "createdb -O aircolor mlflow" in setup
    assert "~/.pgpass" in setup and "umask 077" in setup  # the password is never on a command line
    assert "aircolor-pg-password" not in head


def test_the_validator_catches_a_broken_config():
    """Proof that the first test can fail: the same config with a typo in a required key is rejected."""
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(load())
    broken["available_node_types"]["gpu_worker"]["max_wrokers"] = broken["available_node_types"]["gpu_worker"].pop(
        "max_workers")
    with pytest.raises(Exception):
        validate_config(prepare_config(broken))
