"""Sweeps end to end on a real local Ray cluster (``ray start --head``), logged to a real MLflow server.

Every sweep here uses ``--smoke`` sizes and ``--metric delta_e2000``: with the random Inception weights of the
test session FID cannot judge color (and the sweep driver says so).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweep_cli import REPO, SPACES, children, cli, one_seed, sweep_args


def test_categorical_sweep_runs_every_combination_once(smoke_sweep, ray_cluster, mlflow_uri):
    """The session's smoke sweep (tests/conftest.py): a grid, every metric, each combination once (a grid of two
    seeds: test_ray_job_submit_runs_a_smoke_sweep)."""
    name, storage, res = smoke_sweep["name"], smoke_sweep["storage"], smoke_sweep["result"]
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 trials (2 terminated)" in res.stdout
    parent, kids = children(MlflowClient(mlflow_uri), name)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.status"] == "FINISHED"
    assert parent.data.params["sweep.search"] == "grid"
    names = sorted(k.data.tags["mlflow.runName"] for k in kids)
    assert names == ["cut/seed0", "fastcut/seed0"]
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert "val.fid" in kid.data.metrics and "val.delta_e2000" in kid.data.metrics
        assert kid.data.tags["factor.identity"] == kid.data.params["model.cut_mode"]
        assert kid.data.params["model.cut_mode"] == kid.data.tags["mlflow.runName"].split("/")[0]
    status = cli(["sweep", "status", name, "--storage", str(storage), "--json"], ray_cluster, mlflow_uri)
    data = json.loads(status.stdout)
    assert len(data["trials"]) == 2 and data["best"] is not None
    listed = cli(["sweep", "list", "--storage", str(storage)], ray_cluster, mlflow_uri)
    assert name in listed.stdout


def test_optuna_asha_sweep_stops_trials_early(tmp_path, prepared_sample, ray_cluster, mlflow_uri):
    name = "gd-balance"
    res = cli(["sweep", "run", str(SPACES / "g_d_balance.yaml"),
               *sweep_args(name, prepared_sample, tmp_path),
               "--num-samples", "6", "--grace-period", "1", "--reduction-factor", "2"], ray_cluster, mlflow_uri)
    assert res.returncode == 0, res.stdout + res.stderr
    parent, kids = children(MlflowClient(mlflow_uri), name)
    assert parent.data.params["sweep.search"] == "optuna-tpe" and len(kids) == 6
    stopped = [k for k in kids if k.data.tags.get("stopped_early") == "true"]
    assert stopped, "ASHA stopped no trial"
    for kid in stopped:
        assert kid.info.status == "KILLED" and int(kid.data.tags["tune.last_epoch"]) < 2  # smoke: 1 + 1 epochs
    for kid in kids:  # a trial that ran its whole budget is FINISHED, even if Tune stopped it at its last report
        assert (kid.info.status == "FINISHED") == (kid.data.metrics["epoch"] == 2), kid.data.tags
    assert "best.val.delta_e2000" in parent.data.metrics and parent.data.tags["best_trial"]


def test_failing_trials_retry_from_checkpoint_or_end_failed(tmp_path, prepared_sample, ray_cluster, mlflow_uri):
    name, space = "faults", one_seed("pix2pix_generator.yaml", tmp_path / "space")
    res = cli(["sweep", "run", str(space),
               *sweep_args(name, prepared_sample, tmp_path), "--scheduler", "none", "--max-failures", "2"],
              ray_cluster, mlflow_uri, fault="unet_256/seed0:once")
    assert res.returncode == 0, res.stdout + res.stderr
    _, kids = children(MlflowClient(mlflow_uri), name)
    by_name = {k.data.tags["mlflow.runName"]: k for k in kids}
    assert len(by_name) == len(kids) == 2, "a retried trial opened a second MLflow run"
    recovered = by_name["unet_256/seed0"]
    assert recovered.info.status == "FINISHED"
    history = MlflowClient(mlflow_uri).get_metric_history(recovered.info.run_id, "val.delta_e2000")
    assert sorted(m.step for m in history) == [1, 2], "the retry did not resume from its checkpoint"
    trial_dirs = list((tmp_path / name / "trials").glob("*/.injected-failure"))
    assert len(trial_dirs) == 1

    name = "faults-always"
    res = cli(["sweep", "run", str(space),
               *sweep_args(name, prepared_sample, tmp_path), "--scheduler", "none", "--max-failures", "1"],
              ray_cluster, mlflow_uri, fault="resnet_9blocks/seed0:always")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 error" in res.stdout
    _, kids = children(MlflowClient(mlflow_uri), name)
    failed = [k for k in kids if k.info.status == "FAILED"]
    assert [k.data.tags["mlflow.runName"] for k in failed] == ["resnet_9blocks/seed0"]
    assert "injected failure" in failed[0].data.tags["error"]
    assert sum(k.info.status == "FINISHED" for k in kids) == 1


def test_killed_driver_resumes_without_duplicates(tmp_path, prepared_sample, ray_cluster, mlflow_uri):
    name = "resume"
    proc = cli(["sweep", "run", str(one_seed("pix2pix_colorspace.yaml", tmp_path / "space")),
                *sweep_args(name, prepared_sample, tmp_path, "train.n_epochs=2", "train.n_epochs_decay=1"),
                "--scheduler", "none", "--max-concurrent", "1"], ray_cluster, mlflow_uri, background=True)
    client = MlflowClient(mlflow_uri)
    deadline = time.time() + 600
    finished: list = []
    while time.time() < deadline:  # wait until one trial finished and the next one is running
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("aircolor.kind") != "sweep"]
            finished = [r for r in runs if r.info.status == "FINISHED"]
            if finished and any(r.info.status == "RUNNING" for r in runs):
                break
        if proc.poll() is not None:
            pytest.fail("the sweep ended before it could be killed:\n" + proc.stdout.read())
        time.sleep(1)
    assert finished, "no trial finished in time"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done_before = {r.info.run_id: r.info.end_time for r in finished}

    res = cli(["sweep", "resume", name, "--storage", str(tmp_path)], ray_cluster, mlflow_uri)
    assert res.returncode == 0, res.stdout + res.stderr
    _, kids = children(client, name)
    names = [k.data.tags["mlflow.runName"] for k in kids]
    assert sorted(names) == ["lab/seed0", "rgb/seed0"]  # once each
    assert all(k.info.status == "FINISHED" for k in kids)
    for run_id, end_time in done_before.items():  # finished trials were not rerun
        assert client.get_run(run_id).info.end_time == end_time
        steps = [m.step for m in client.get_metric_history(run_id, "val.delta_e2000")]
        assert sorted(steps) == sorted(set(steps))


def test_ray_job_submit_runs_a_smoke_sweep(tmp_path, prepared_sample, ray_cluster, mlflow_uri):
    """A shipped two-seed grid submitted as a Ray job: every combination x seed runs once."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = dict(ray_cluster["env"], RAY_ADDRESS=ray_cluster["dashboard"])
    runtime_env = json.dumps({"env_vars": {"MLFLOW_TRACKING_URI": mlflow_uri}})
    for attempt in range(4):
        res = subprocess.run([ray_bin, "job", "submit", "--address", ray_cluster["dashboard"], "--working-dir",
                              str(REPO), "--runtime-env-json", runtime_env, "--", sys.executable, "-m", "sweeps.run",
                              "search_spaces/pix2pix_colorspace.yaml",
                              *sweep_args("job-submit", prepared_sample, tmp_path, "--scheduler", "none")],
                             env=env, capture_output=True, text=True, timeout=900)
        # The job server answers before the head's dashboard agent has registered (slow on 2 busy cores); Ray says
        # "try again later" and has started nothing.
        if "No available agent to submit job" not in res.stderr:
            break
        time.sleep(10)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "sweep job-submit: FINISHED" in res.stdout
    _, kids = children(MlflowClient(mlflow_uri), "job-submit")
    assert all(k.info.status == "FINISHED" for k in kids)
    assert sorted(k.data.tags["mlflow.runName"] for k in kids) == ["lab/seed0", "lab/seed1", "rgb/seed0", "rgb/seed1"]


CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,1000", "--virtual-time-budget=20000"]


def chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def test_mlflow_ui_shows_the_sweeps_child_runs(tmp_path, smoke_sweep, mlflow_uri):
    """The session's smoke sweep, logged to a real mlflow server: its run page in headless Chromium lists every
    trial."""
    browser = chromium()
    name = smoke_sweep["name"]
    assert smoke_sweep["result"].returncode == 0, smoke_sweep["result"].stdout + smoke_sweep["result"].stderr
    parent, kids = children(MlflowClient(mlflow_uri), name)
    url = f"{mlflow_uri}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180).stdout
    for kid in kids:
        assert kid.data.tags["mlflow.runName"] in dom, f"{kid.data.tags['mlflow.runName']} not on the sweep's page"
    assert f"sweep:{name}" in dom
    shot = tmp_path / "mlflow-sweep.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", url],
                   capture_output=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 20_000
    exp = MlflowClient(mlflow_uri).get_experiment(parent.info.experiment_id)
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"  # the UI opens on the runs table
