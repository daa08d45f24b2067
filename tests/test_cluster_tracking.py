"""Cluster-grade tracking: trials on other nodes reach the server, PostgreSQL behind it, basic auth, no spool left.

Real parts only: a second Ray node joins the session's cluster (``ray start --address --block`` at 127.0.0.2, so
the cluster has nodes at two addresses), a throwaway PostgreSQL server (``initdb`` + ``postgres`` as ``nobody``)
backs a real ``mlflow server``, and ``mlflow server --app-name basic-auth`` checks credentials.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from aircolor.errors import UsageError
from aircolor.tracking import Tracker
from mlflow_server import MlflowServer, PostgresServer, postgres_bin
from ray_local import RayNode
from sweeps.reach import ClusterView, _autoscaler_running, is_loopback, reachable_tracking_uri
from sweep_cli import NO_INCEPTION, children, cli, one_seed, sweep_args

ALWAYS, NEVER = (lambda host, port: True), (lambda host, port: False)


# ----------------------------------------------------------------------------------- the rewrite, unit by unit
@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "localhost", "LOCALHOST.", "[::1]", "app.localhost"])
def test_loopback_hosts_are_recognised(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "mlflow.internal", "0.0.0.0", "[2001:db8::1]", "192.0.2.2"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_one_node_keeps_the_loopback_uri():
    one = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5",))
    assert reachable_tracking_uri("http://127.0.0.1:5000", one, probe=NEVER) == "http://127.0.0.1:5000"
    same_machine = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5", "10.0.0.5"))
    assert reachable_tracking_uri("http://localhost:5000", same_machine, probe=NEVER) == "http://localhost:5000"


def test_more_nodes_rewrite_the_host_to_the_driver_address():
    two = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5", "10.0.0.9"))
    assert reachable_tracking_uri("http://127.0.0.1:5000", two, probe=ALWAYS) == "http://10.0.0.5:5000"
    assert (reachable_tracking_uri("https://me:pw@localhost/mlflow/?x=1", two, probe=ALWAYS)
            == "https://me:pw@10.0.0.5:443/mlflow/?x=1")
    six = ClusterView(driver_ip="fd00::5", node_ips=("fd00::5", "fd00::6"))
    assert reachable_tracking_uri("http://[::1]:5000", six, probe=ALWAYS) == "http://[fd00::5]:5000"
    scaling = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5",), autoscaling=True)
    assert reachable_tracking_uri("http://127.0.0.1:5000", scaling, probe=ALWAYS) == "http://10.0.0.5:5000"


def test_reachable_and_non_http_uris_are_left_alone():
    two = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5", "10.0.0.9"))
    for uri in ("http://10.0.0.5:5000", "http://mlflow.internal:5000", "sqlite:////shared/mlruns.db",
                "postgresql+psycopg://u@127.0.0.1/mlflow", "file:///shared/mlruns"):
        assert reachable_tracking_uri(uri, two, probe=NEVER) == uri


def test_refused_when_the_server_does_not_answer_at_the_driver_address():
    two = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5", "10.0.0.9"))
    with pytest.raises(UsageError) as err:
        reachable_tracking_uri("http://user:hunter2@127.0.0.1:5000", two, probe=NEVER)
    line = str(err.value)
    assert "\n" not in line and "hunter2" not in line
    assert "10.0.0.9" in line and "10.0.0.5:5000" in line and "--tracking-uri http://<private address>:5000" in line
    scaling = ClusterView(driver_ip="127.0.0.1", node_ips=("127.0.0.1",), autoscaling=True)
    with pytest.raises(UsageError, match="autoscaler may add"):
        reachable_tracking_uri("http://127.0.0.1:5000", scaling, probe=ALWAYS)


def test_extra_nodes_on_loopback_keep_the_uri_when_the_driver_address_does_not_answer():
    local = ClusterView(driver_ip="10.0.0.5", node_ips=("10.0.0.5", "127.0.0.2"))
    assert reachable_tracking_uri("http://127.0.0.1:5000", local, probe=NEVER) == "http://127.0.0.1:5000"
    assert reachable_tracking_uri("http://127.0.0.1:5000", local, probe=ALWAYS) == "http://10.0.0.5:5000"


def test_an_autoscaler_is_recognised_by_the_launcher_bootstrap_config(tmp_path):
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    assert not _autoscaler_running(bootstrap)
    bootstrap.write_text("cluster_name: aircolor\nmax_workers: 4\n")
    assert _autoscaler_running(bootstrap)
    bootstrap.write_text("cluster_name: aircolor\nmax_workers: 0\n")
    assert not _autoscaler_running(bootstrap)


# ----------------------------------------------------------------------------------- real servers
@pytest.fixture(scope="module")
def postgres():
    if postgres_bin("initdb") is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; 'make test' installs it (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with PostgresServer(Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))) as server:
        yield server


def _tune_node_ips(sweep_dir: Path) -> set[str]:
    ips = set()
    for result in (sweep_dir / "tune").rglob("result.json"):
        for line in result.read_text().splitlines():
            if line.strip():
                ips.add(json.loads(line).get("node_ip"))
    return ips


def test_a_two_node_sweep_logs_to_postgresql_through_the_driver_address(tmp_path, prepared_sample, ray_cluster,
                                                                        postgres):
    ray = ray_cluster["ray"]
    driver_ip = ray.util.get_node_ip_address()
    if is_loopback(driver_ip):
        pytest.skip("Ray sees this machine only through loopback: no address to rewrite to")
    db = postgres.create_database("mlflow_cluster")
    allowed = f"localhost:*,127.0.0.1:*,{driver_ip}:*"  # MLflow's default takes private networks only
    with MlflowServer(tmp_path / "mlflow", backend_uri=db, host="0.0.0.0", allowed_hosts=allowed) as server:
        node = RayNode.worker(ray_cluster["address"], tempfile.mkdtemp(prefix="rw", dir="/tmp"), ray_cluster["env"],
                              node_ip="127.0.0.2", num_cpus=1)
        node.start(lambda: sum(n["Alive"] for n in ray.nodes()) == 2)
        try:  # three generators, one seed: three trials at once, so one must run on the 1-CPU second node
            space = one_seed("pix2pix_generator.yaml", tmp_path,
                            {"model.netG": ["unet_256", "resnet_9blocks", "resnet_6blocks"]})
            res = cli(["sweep", "run", str(space),
                       *sweep_args("two-nodes", prepared_sample, tmp_path), "--scheduler", "none",
                       "--max-concurrent", "3"], ray_cluster, server.url)
        finally:
            node.stop()
        assert res.returncode == 0, res.stdout + res.stderr
        rewritten = f"http://{driver_ip}:{server.port}"
        assert f"they log to {rewritten} (this node's address) instead of {server.url}" in res.stdout
        state = json.loads((tmp_path / "two-nodes" / "aircolor-sweep.json").read_text())
        assert state["tracking_uri"] == rewritten
        assert "127.0.0.2" in _tune_node_ips(tmp_path / "two-nodes"), "no trial ran on the second node"
        client = MlflowClient(server.url)
        _, kids = children(client, "two-nodes")
        assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
        for kid in kids:
            steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val.delta_e2000")]
            assert sorted(steps) == [1, 2], kid.data.tags["mlflow.runName"]
        runs_in_db = postgres._psql("mlflow_cluster", "SELECT count(*) FROM runs").stdout.strip()
        assert int(runs_in_db) == 4  # the parent and its three trials, in PostgreSQL

        out = tmp_path / "report"
        rep = cli(["report", "--experiment", "two-nodes", "--tracking-uri", server.url, "--out", str(out),
                   "--no-samples", "--bootstrap", "200"], ray_cluster, server.url)
        assert rep.returncode == 0, rep.stdout + rep.stderr
        html = (out / "index.html").read_text()
        assert "unet_256" in html and "resnet_9blocks" in html


def _ended_spool(sweep_dir: Path) -> Path | None:
    """A spool file under the sweep's trials whose tracker has ended (its lock is free)."""
    for path in (sweep_dir / "trials").glob("*/mlflow-spool/*.spool.jsonl"):
        try:
            with open(path, "rb") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return path
        except (BlockingIOError, FileNotFoundError):
            continue
    return None


def test_a_sweep_whose_server_was_down_ends_with_everything_in_mlflow(tmp_path, prepared_sample, ray_cluster):
    from sweeps.status import unsent_records

    name = "outage"
    with MlflowServer(tmp_path / "mlflow") as server:
        proc = cli(["sweep", "run", str(one_seed("pix2pix_generator.yaml", tmp_path / "space")),
                    *sweep_args(name, prepared_sample, tmp_path, "tracking.end_wait_s=0"), "--scheduler", "none",
                    "--max-concurrent", "1"], ray_cluster, server.url, background=True)
        client = MlflowClient(server.url)
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:  # the first trial's run is in MLflow
            exp = client.get_experiment_by_name(name)
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if any(r.data.tags.get("aircolor.kind") != "sweep" for r in runs):
                break
            time.sleep(1)
        server.stop()
        while time.time() < deadline and proc.poll() is None and _ended_spool(tmp_path / name) is None:
            time.sleep(1)  # a trial ended while the server was down and left its records behind
        left_behind = _ended_spool(tmp_path / name)
        # Read in this process, in milliseconds: the server must be back before the sweep ends (its second trial
        # takes seconds), or the end-of-sweep replay finds it still down.
        unsent = unsent_records(tmp_path / name)
        server.start()
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out
        assert left_behind is not None, "no trial ended while the server was down"
        assert unsent["records"] > 0 and str(left_behind) in unsent["spools"], unsent
        assert "replayed" in out and "tracking record(s) that trials could not send" in out, out
        after = cli(["sweep", "status", name, "--storage", str(tmp_path), "--json"], ray_cluster, server.url)
        assert json.loads(after.stdout.strip().splitlines()[-1])["unsent"] == {"records": 0, "spools": []}
        assert not list((tmp_path / name).rglob("*.spool.jsonl")), "records left in a spool"
        parent, kids = children(client, name)
        assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids), [k.info.status for k in kids]
        # the driver's own records (how each trial ended in Tune, the best trial) waited and were sent too
        assert all(k.data.tags.get("tune.status") == "TERMINATED" for k in kids), [k.data.tags for k in kids]
        assert "best.val.delta_e2000" in parent.data.metrics and parent.data.tags["sweep.status"] == "FINISHED"
        for kid in kids:
            steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val.delta_e2000")]
            assert sorted(steps) == [1, 2], kid.data.tags["mlflow.runName"]
        status = cli(["sweep", "status", name, "--storage", str(tmp_path)], ray_cluster, server.url)
        assert status.returncode == 0 and "every record is in MLflow" in status.stdout, status.stdout


# ----------------------------------------------------------------------------------- basic auth
ADMIN, PASSWORD = "admin", "air-color-admin-pass-1234"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = root / "basic_auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{root}/auth.db\n"
                   f"admin_username = {ADMIN}\nadmin_password = {PASSWORD}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-secret"}
    with MlflowServer(root / "server", app_name="basic-auth", env=env) as server:
        yield server


def test_the_tracker_logs_with_credentials_from_the_environment(auth_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(UsageError, match="asks for credentials and none are set.*MLFLOW_TRACKING_USERNAME"):
        Tracker(auth_server.url, "auth", "anonymous", spool_dir=tmp_path / "spool").start()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(UsageError, match="refused the credentials of user 'admin'") as err:
        Tracker(auth_server.url, "auth", "wrong-password", spool_dir=tmp_path / "spool").start()
    assert "wrong" not in str(err.value).replace("wrong-password", "")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    with Tracker(auth_server.url, "auth", "admin-run", spool_dir=tmp_path / "spool") as tracker:
        tracker.log_metrics({"loss": 0.5}, step=1)
    run = MlflowClient(auth_server.url).get_run(tracker.run_id)
    assert run.data.metrics == {"loss": 0.5} and run.info.status == "FINISHED"
    assert not list((tmp_path / "spool").glob("*.spool.jsonl"))


def test_ray_train_workers_get_the_driver_credentials(auth_server, prepared_sample, ray_cluster, tmp_path):
    """The Ray workers' environment has no credentials (the cluster was started without them): they must come from
    the driver's, or the worker's tracker is refused."""
    env = dict(ray_cluster["env"], RAY_ADDRESS=ray_cluster["address"], MLFLOW_TRACKING_USERNAME=ADMIN,
               MLFLOW_TRACKING_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1")
    assert "MLFLOW_TRACKING_PASSWORD" not in ray_cluster["env"]
    cmd = [sys.executable, "-m", "aircolor", "train", "aircolor/configs/demo_cpu.yaml", f"data.root={prepared_sample}",
           "data.size=32", "model.ngf=8", "model.ndf=8", "train.n_epochs=1", "train.n_epochs_decay=0",
           "data.max_images=4", "train.batch_size=2", "data.num_workers=0", "metrics.max_images=4",
           "metrics.kid_subset_size=2", *NO_INCEPTION,
           "metrics.eval_every=1", "tracking.experiment=auth-ray",
           f"tracking.tracking_uri={auth_server.url}", f"train.output_dir={tmp_path}", "--ray", "--workers", "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(auth_server.url)
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN, PASSWORD
    try:
        exp = client.get_experiment_by_name("auth-ray")
        runs = client.search_runs([exp.experiment_id])
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and "val.delta_e2000" in runs[0].data.metrics


def test_the_driver_replays_leftover_spools_and_counts_what_is_still_unsent(tmp_path, capsys):
    """What ``sweep run`` does at its end and ``sweep resume`` at its start: a trial's spool is counted, kept while
    the server is down (one warning, a note in the sweep state), and sent once it is back."""
    from sweeps.state import SweepOptions, SweepState
    from sweeps.status import replay_leftovers, unsent_records

    with MlflowServer(tmp_path / "mlflow") as server:
        state = SweepState(name="left", storage=str(tmp_path / "sweeps"), space_path="s.yaml", space_sha256="",
                           space_text="", options=SweepOptions(), experiment="left", tracking_uri=server.url)
        state.folder.mkdir(parents=True)
        state.save()
        server.stop()
        tracker = Tracker(server.url, "left", "trial-a", spool_dir=state.folder / "trials" / "t1" / "mlflow-spool",
                          retry_min_s=0.05, retry_max_s=0.1).start()
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.end("FINISHED")
        assert unsent_records(state.folder)["records"] == 3  # start, metrics, end
        replay_leftovers(state)
        out = capsys.readouterr().out
        assert "3 tracking record(s) still unsent in 1 spool file(s)" in out and "sweep resume left" in out
        assert any("still unsent" in n for n in SweepState.load(state.storage, "left").notes)
        server.start()
        replay_leftovers(state)
        assert "replayed 3 tracking record(s)" in capsys.readouterr().out
        assert unsent_records(state.folder) == {"records": 0, "spools": []}
        client = MlflowClient(server.url)
        (run,) = client.search_runs([client.get_experiment_by_name("left").experiment_id])
        assert run.info.run_name == "trial-a" and run.data.metrics == {"loss": 1.0}
