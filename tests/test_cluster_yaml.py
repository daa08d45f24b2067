"""cluster.yaml is a real Ray cluster launcher configuration: parsed and checked by Ray's own validator."""

from __future__ import annotations

import copy
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
    assert f"pip install -e {project[0]}" in setup
    assert "AIRCOLOR_SWEEP_STORAGE=/mnt/shared" in setup and "MLFLOW_TRACKING_URI=http://" in setup
    head = "\n".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "mlflow server" in head and "--port 5000" in head
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])


def test_the_validator_catches_a_broken_config():
    """Proof that the first test can fail: the same config with a typo in a required key is rejected."""
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(load())
    broken["available_node_types"]["gpu_worker"]["max_wrokers"] = broken["available_node_types"]["gpu_worker"].pop(
        "max_workers")
    with pytest.raises(Exception):
        validate_config(prepare_config(broken))
