"""MLflow tracking against a real ``mlflow server``: logging, resuming, outages mid-run and for a whole run, replay.

One server per module (about 5 s to start); the outage tests stop and restart it on the same port and store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from aircolor.config import flatten, load_config
from aircolor.errors import UsageError
from aircolor.tracking import (Tracker, local_artifact_root, params_from_config, register_cli, replay,
                               resolve_tracking_uri, run_tags)
from aircolor.tracking.spool import SpoolWriter, find_spools, parse_spool
from aircolor.tracking.tracker import now_ms

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mlflow_server.py, whether or not tests/ is a package
from mlflow_server import MlflowServer, free_port  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def live(server: MlflowServer) -> MlflowServer:
    """The module's server, running (a test that stopped it and failed may have left it down)."""
    return server.start()


def client_for(server: MlflowServer):
    return mlflow.MlflowClient(server.url)


def quick_tracker(url: str, experiment: str, run_name: str, spool: Path, **kwargs) -> Tracker:
    """A tracker that retries a down server after 50-200 ms instead of 1-30 s (tests must not wait)."""
    return Tracker(url, experiment, run_name, spool_dir=spool, retry_min_s=0.05, retry_max_s=0.2, **kwargs)


def history(client, run_id: str, key: str) -> list[tuple[int, float, int]]:
    return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key))


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def replay_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="aircolor")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tracking", "replay", *argv])
    return args.func(args)


# --------------------------------------------------------------------------------------------- live server
def test_tracker_logs_params_tags_metrics_artifacts(live, tmp_path):
    sample = tmp_path / "sample.txt"
    sample.write_text("a colorized tile would be here\n")
    params = {f"p{i:03d}": i for i in range(150)}  # more than one log_batch (100 params per call)
    params["long"] = "x" * 7000  # MLflow's limit is 6000 characters
    env_before = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    with quick_tracker(live.url, "basic", "run-basic", tmp_path / "spool") as tracker:
        tracker.log_params(params)
        tracker.set_tags({"family": "pix2pix", "device": "cpu"})
        for step in range(4):
            tracker.log_metrics({"loss_G": 1.0 / (step + 1), "loss_D": 0.5}, step=step)
        tracker.log_artifact(sample, "samples")
        tracker.log_dict({"model": {"ngf": 64}}, "config.yaml")
        tracker.log_text("hello", "notes/readme.txt")
        run_id = tracker.run_id
    assert os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") == env_before  # the short HTTP settings were scoped
    client = client_for(live)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run-basic"
    assert client.get_experiment(run.info.experiment_id).name == "basic"
    assert run.data.params["p149"] == "149" and len(run.data.params) == 151
    assert len(run.data.params["long"]) == 6000 and run.data.params["long"].endswith("chars]")
    assert run.data.tags["family"] == "pix2pix" and run.data.tags["device"] == "cpu"
    assert [s for s, _, _ in history(client, run_id, "loss_G")] == [0, 1, 2, 3]
    assert history(client, run_id, "loss_G")[1][1] == pytest.approx(0.5)
    assert artifact_paths(client, run_id) == {"samples/sample.txt", "config.yaml", "notes/readme.txt"}
    assert not (tmp_path / "spool").exists() or find_spools(tmp_path / "spool") == []


def test_two_trackers_in_one_process_with_a_parent_run(live, tmp_path):
    client = client_for(live)
    parent = quick_tracker(live.url, "nested", "sweep", tmp_path / "spool").start()
    child = quick_tracker(live.url, "nested", "trial-0", tmp_path / "spool", parent_run_id=parent.run_id).start()
    for step in range(3):
        parent.log_metrics({"best": float(step)}, step)
        child.log_metrics({"loss": float(-step)}, step)
    child.end()
    parent.end()
    children = client.search_runs([client.get_experiment_by_name("nested").experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert [r.info.run_id for r in children] == [child.run_id]
    assert [s for s, _, _ in history(client, parent.run_id, "best")] == [0, 1, 2]
    assert [s for s, _, _ in history(client, child.run_id, "loss")] == [0, 1, 2]


def test_resume_into_an_existing_run_appends_without_a_duplicate(live, tmp_path):
    client = client_for(live)
    first = quick_tracker(live.url, "resume", "r", tmp_path / "spool").start()
    first.log_params({"model.ngf": 64})
    for step in range(3):
        first.log_metrics({"loss": float(step)}, step)
    first.end("KILLED")
    assert client.get_run(first.run_id).info.status == "KILLED"

    second = quick_tracker(live.url, "resume", "r", tmp_path / "spool", run_id=first.run_id).start()
    assert second.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "RUNNING"
    second.log_params({"model.ngf": 64})  # the engine logs the same config again: accepted
    for step in range(3, 6):
        second.log_metrics({"loss": float(step)}, step)
    second.end()
    runs = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert [r.info.run_id for r in runs] == [first.run_id]
    assert [s for s, _, _ in history(client, first.run_id, "loss")] == list(range(6))
    assert client.get_run(first.run_id).info.status == "FINISHED"


def test_resume_into_a_missing_run_is_a_usage_error(live, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        quick_tracker(live.url, "resume", "r", tmp_path / "spool", run_id="0" * 32).start()


# --------------------------------------------------------------------------------------------- outages
def test_server_down_mid_run_loses_nothing_and_duplicates_nothing(live, tmp_path, caplog):
    client = client_for(live)
    spool = tmp_path / "spool"
    ckpt = tmp_path / "ckpt.bin"
    tracker = quick_tracker(live.url, "outage", "mid-run", spool).start()
    tracker.log_params({"model.ngf": 32})
    for step in range(3):
        tracker.log_metrics({"loss_G": step + 0.5, "loss_D": step + 0.25}, step)

    live.stop()
    down_stamps = {}
    with caplog.at_level(logging.WARNING, logger="aircolor.tracking"):
        for step in range(3, 7):
            started = time.monotonic()
            tracker.log_metrics({"loss_G": step + 0.5, "loss_D": step + 0.25}, step)
            assert time.monotonic() - started < 2.0, "a call blocked training while the server was down"
            down_stamps[step] = int(time.time() * 1000)
            time.sleep(0.06)  # let the retry pause pass, so later calls retry (and fail) too
        ckpt.write_bytes(b"epoch 6 weights")
        tracker.log_artifact(ckpt, "checkpoints")
        tracker.set_tags({"phase": "during-outage"})
    ckpt.write_bytes(b"overwritten after logging")  # the spool kept its own copy
    assert tracker.pending >= 6
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1  # one warning per outage
    spool_file = tracker.spool_path
    assert spool_file is not None and spool_file.exists()
    state = parse_spool(spool_file, spool_file.read_bytes())  # valid JSON lines, in order
    assert [r["kind"] for r in state.pending][:4] == ["metrics"] * 4
    assert all(json.loads(line) for line in spool_file.read_text().splitlines())

    live.start()
    time.sleep(0.25)  # past the longest retry pause
    for step in range(7, 9):
        tracker.log_metrics({"loss_G": step + 0.5, "loss_D": step + 0.25}, step)
    assert tracker.pending == 0 and not spool_file.exists()
    tracker.end()

    for key, offset in (("loss_G", 0.5), ("loss_D", 0.25)):
        points = history(client, tracker.run_id, key)
        assert [s for s, _, _ in points] == list(range(9)), key  # every step exactly once
        assert [v for _, v, _ in points] == [s + offset for s in range(9)]
        for step, _, stamp in points:  # the outage's points kept the time they were logged at
            if step in down_stamps:
                assert stamp <= down_stamps[step]
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["phase"] == "during-outage"
    assert "checkpoints/ckpt.bin" in artifact_paths(client, tracker.run_id)
    got = client.download_artifacts(tracker.run_id, "checkpoints/ckpt.bin", str(tmp_path / "dl"))
    assert Path(got).read_bytes() == b"epoch 6 weights"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_server_down_for_the_whole_run_then_replay_exactly_once(live, tmp_path, caplog):
    client = client_for(live)
    spool = tmp_path / "run" / "mlflow-spool"
    weights = tmp_path / "G.pt"
    weights.write_bytes(b"generator weights")
    live.stop()
    with (caplog.at_level(logging.WARNING, logger="aircolor.tracking"),
          quick_tracker(live.url, "offline", "never-online", spool) as tracker):
        tracker.log_params({"model.ngf": 16, "train.seed": 3})
        tracker.set_tags({"family": "cut"})
        for step in range(5):
            tracker.log_metrics({"fid": 100.0 - step}, step)
        tracker.log_artifact(weights, "model")
    assert tracker.run_id is None
    warning = [r.getMessage() for r in caplog.records if "replay" in r.getMessage()]
    assert len(warning) == 1 and f"aircolor tracking replay {spool.resolve()}" in warning[0]
    spools = find_spools(spool)
    assert len(spools) == 1
    with open(spools[0], "ab") as fh:  # a crash in the middle of an append leaves a torn line: it is ignored
        fh.write(b'{"kind": "metrics", "seq": 99, "metr')
    backup = tmp_path / "backup"
    shutil.copytree(spool, backup)
    spooled = {(p["step"], p["timestamp"]) for r in parse_spool(spools[0], spools[0].read_bytes()).pending
               if r["kind"] == "metrics"
               for p in r["metrics"]}
    logged_before = now_ms()
    time.sleep(0.05)

    live.start()
    assert replay_cli(str(spool)) == 0
    assert find_spools(spool) == []
    exp = client.get_experiment_by_name("offline")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "never-online" and run.info.status == "FINISHED"
    assert run.data.params == {"model.ngf": "16", "train.seed": "3"} and run.data.tags["family"] == "cut"
    assert [(s, v) for s, v, _ in history(client, run.info.run_id, "fid")] == [(s, 100.0 - s) for s in range(5)]
    # the replayed points keep the step and the time they were logged at, not the time of the replay
    assert {(s, t) for s, _, t in history(client, run.info.run_id, "fid")} == spooled and len(spooled) == 5
    assert all(t < logged_before for _, t in spooled)
    assert artifact_paths(client, run.info.run_id) == {"model/G.pt"}

    # Replaying again sends nothing: the spool is gone.
    again = replay(spool)
    assert again.sent == 0 and again.ok

    # Replays that crashed between sending a record and writing its acknowledgement (only the first unacknowledged
    # record can be in that state) send it again without creating anything twice.
    torn = find_spools(backup)[0].read_bytes()
    data = torn[: torn.rfind(b"\n") + 1]  # a replay cuts the torn line off before it appends
    records = parse_spool(find_spools(backup)[0], data).pending
    last_metrics = max(r["seq"] for r in records if r["kind"] == "metrics")
    # ... after the last metrics record: its points are found on the server and not sent again
    find_spools(backup)[0].write_bytes(data + json.dumps({"kind": "run_id", "run_id": run.info.run_id}).encode()
                                       + b"\n" + json.dumps({"kind": "ack", "upto": last_metrics - 1}).encode() + b"\n")
    files = find_spools(backup)[0].with_name(find_spools(backup)[0].name.replace(".spool.jsonl", ".files"))
    shutil.copytree(files, tmp_path / "files-copy")  # the replay below deletes them once they are sent
    result = replay(backup, live.url)
    assert result.ok and result.items["metric points"] == 0 and result.runs == [run.info.run_id]
    assert result.records["metrics"] == 1 and result.records["end"] == 1
    # ... after creating the run: it is found by its tracker key instead of created again
    backup.mkdir(exist_ok=True)
    (backup / "again.spool.jsonl").write_bytes(data)
    shutil.copytree(tmp_path / "files-copy", files)  # the records name their files by the original key
    result = replay(backup)
    assert result.ok and result.items["runs created"] == 0 and result.runs == [run.info.run_id]
    assert len(client.search_runs([exp.experiment_id])) == 1
    assert len(history(client, run.info.run_id, "fid")) == 5


def test_replay_while_the_server_is_still_down_keeps_the_spool(live, tmp_path):
    spool = tmp_path / "spool"
    live.stop()
    try:
        tracker = quick_tracker(live.url, "offline-2", "x", spool, http_timeout_s=2).start()
        tracker.log_metrics({"loss": 1.0}, 0)
        tracker.end()
        result = replay(spool, http_retries=0)
        assert not result.ok and len(result.kept) == 1 and result.sent == 0
        assert replay_cli(str(spool)) == 1
        assert len(find_spools(spool)) == 1
    finally:
        live.start()
    assert replay(spool).ok and find_spools(spool) == []


def test_replay_skips_the_spool_of_a_running_tracker(live, tmp_path):
    live.stop()
    try:
        tracker = quick_tracker(live.url, "offline-3", "x", tmp_path / "spool").start()
        tracker.log_metrics({"loss": 1.0}, 0)
        result = replay(tmp_path / "spool", http_retries=0)
        assert result.in_use == [tracker.spool_path] and result.sent == 0
    finally:
        live.start()
    tracker.end()  # the server is back: the final flush creates the run and sends everything
    assert find_spools(tmp_path / "spool") == []
    run = client_for(live).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "x" and "mlflow.user" in run.data.tags
    assert [s for s, _, _ in history(client_for(live), tracker.run_id, "loss")] == [0]


CRASHING_TRAINER = """
import os, signal, sys
from pathlib import Path
from aircolor.tracking import Tracker

url, spool, weights = sys.argv[1], sys.argv[2], Path(sys.argv[3])
tracker = Tracker(url, "crashed", "killed-mid-run", spool_dir=spool, retry_min_s=0.0, retry_max_s=0.0).start()
tracker.log_params({"model.ngf": 8})
for step in range(5):
    tracker.log_metrics({"loss": float(step)}, step)
tracker.log_artifact(weights, "model")
os.kill(os.getpid(), signal.SIGKILL)  # no end(), no cleanup
"""


def test_a_killed_trainer_leaves_a_spool_that_replays_completely(live, tmp_path):
    weights = tmp_path / "G.pt"
    weights.write_bytes(b"weights")
    dead = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-c", CRASHING_TRAINER, dead, str(tmp_path / "spool"), str(weights)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    result = replay(tmp_path / "spool", live.url)  # the server moved: send there instead
    assert result.ok and result.items["metric points"] == 5 and len(result.runs) == 1, result.format()
    client = client_for(live)
    run = client.get_run(result.runs[0])
    assert run.info.run_name == "killed-mid-run" and run.info.status == "RUNNING"  # it never ended
    assert run.data.params == {"model.ngf": "8"}
    assert [s for s, _, _ in history(client, run.info.run_id, "loss")] == list(range(5))
    assert artifact_paths(client, run.info.run_id) == {"model/G.pt"}


def test_replay_to_a_server_without_the_run_keeps_the_spool(live, tmp_path):
    header = {"key": "k" * 32, "tracking_uri": live.url, "experiment": "elsewhere", "artifact_location": None,
              "run_name": "r", "parent_run_id": None, "run_id": "f" * 32, "created": 0}
    writer = SpoolWriter(tmp_path / "spool", header["key"], header)
    writer.append({"kind": "metrics", "seq": 1, "metrics": [{"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}]})
    writer.close()
    result = replay(tmp_path / "spool")
    assert not result.ok and result.sent == 0 and not result.unreadable
    assert "does not exist" in next(iter(result.kept.values()))
    assert parse_spool(writer.path, writer.path.read_bytes()).pending[0]["seq"] == 1  # nothing acknowledged


def test_replay_of_a_missing_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        replay(tmp_path / "nope")


def test_replay_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        replay_cli("--help")
    out = capsys.readouterr().out
    assert "example:" in out and "aircolor tracking replay" in out and "--tracking-uri" in out


# --------------------------------------------------------------------------------------------- URIs
def test_resolve_tracking_uri_precedence_and_local_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = resolve_tracking_uri(None)
    assert default == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    assert local_artifact_root(default) == tmp_path.resolve() / "mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None) == "http://env:5000"
    assert resolve_tracking_uri("http://config:5000") == "http://config:5000"
    assert resolve_tracking_uri("http://config:5000", "https://cli:5000") == "https://cli:5000"
    assert resolve_tracking_uri("sqlite:///rel/m.db") == f"sqlite:///{tmp_path.resolve()}/rel/m.db"
    assert resolve_tracking_uri("postgresql+psycopg2://u:p@db/mlflow") == "postgresql+psycopg2://u:p@db/mlflow"


@pytest.mark.parametrize("uri, words", [("ftp://host/x", "unknown scheme"), ("htp://host:5000", "unknown scheme"),
                                        ("http://", "no host"), ("sqlite://", "no database")])
def test_bad_tracking_uri_is_a_usage_error(uri, words, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UsageError, match=words) as info:
        resolve_tracking_uri(uri)
    assert "\n" not in str(info.value) and "config tracking.tracking_uri" in str(info.value)
    with pytest.raises(UsageError, match="--tracking-uri"):
        resolve_tracking_uri(None, uri)


def test_local_default_store_is_what_mlflow_ui_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a.txt").write_text("x")
    uri = resolve_tracking_uri(None)
    with Tracker(uri, "local", "offline-default", spool_dir=tmp_path / "spool") as tracker:
        tracker.log_metrics({"loss": 0.5}, 0)
        tracker.log_artifact(tmp_path / "a.txt")
    client = mlflow.MlflowClient("sqlite:///mlruns.db")  # as `mlflow ui --backend-store-uri sqlite:///mlruns.db`
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    stored = list((tmp_path / "mlartifacts").rglob("a.txt"))
    assert len(stored) == 1 and tracker.run_id in stored[0].parts
    assert not (tmp_path / "mlruns").exists()


# --------------------------------------------------------------------------------------------- tags and params
@pytest.mark.parametrize("family, overrides, expected", [
    ("pix2pix", ["data.color_space=lab", "model.input_nc=1"],
     {"factor.generator": "unet_256", "factor.color_space": "lab"}),
    ("cut", ["model.cut_mode=fastcut"], {"factor.gan_mode": "lsgan", "factor.identity": "fastcut"}),
    ("bicyclegan", ["model.z_injection=middle"], {"factor.z_injection": "middle"}),
    ("cyclegan", [], {}),
])
def test_run_tags_name_each_factor_of_the_family(family, overrides, expected):
    cfg = load_config(None, [f"model.family={family}", "model.ngf=32", "train.lr_D=1e-4", *overrides])
    tags = run_tags(cfg)
    factors = {k: v for k, v in tags.items() if k.startswith("factor.") and k != "factor.g_d_balance"}
    assert factors == expected
    assert tags["family"] == family
    assert tags["factor.g_d_balance"] == "ngf=32,ndf=64,lr_G=0.0002,lr_D=0.0001"
    assert tags["aircolor.version"] and tags["host"]
    if (REPO_ROOT / ".git").exists():
        assert len(tags["git.commit"]) == 40


def test_params_are_the_flattened_resolved_config():
    cfg = load_config(None, ["model.family=cut", "tracking.tracking_uri=http://me:secret@mlflow:5000"])
    params = params_from_config(cfg)
    flat = flatten(cfg)
    assert params.keys() == flat.keys()
    assert params["model.netG"] == "resnet_9blocks" and params["model.nce_layers"] == "[0, 4, 8, 12, 16]"
    assert params["tracking.tracking_uri"] == "http://me:***@mlflow:5000"
    assert all(isinstance(v, str) and len(v) <= 6000 for v in params.values())


def test_a_run_made_twice_by_a_lost_answer_is_deduplicated_at_the_end(live, tmp_path):
    """An overloaded or dying server may commit a run creation after the tracker gave up on the request and
    created the run again: the tracker ends with one run, the one holding its records; the late shell is deleted."""
    from aircolor.tracking.sender import TRACKER_KEY_TAG

    client = client_for(live)
    live.stop()
    tracker = quick_tracker(live.url, "dedup", "twice", tmp_path / "spool").start()  # the start fails in transit
    live.start()
    time.sleep(0.3)
    tracker.log_metrics({"loss": 1.0}, step=1)  # the retry creates the run
    assert tracker.run_id is not None
    exp = client.get_experiment_by_name("dedup")
    late = client.create_run(exp.experiment_id, run_name="twice", tags={TRACKER_KEY_TAG: tracker.key})
    tracker.log_metrics({"loss": 0.5}, step=2)
    tracker.end("FINISHED")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [tracker.run_id]
    assert client.get_run(late.info.run_id).info.lifecycle_stage == "deleted"
    assert [s for s, _, _ in history(client, tracker.run_id, "loss")] == [1, 2]


def test_an_overloaded_server_out_of_database_connections_is_an_outage_not_a_refusal():
    """MLflow answers 400 BAD_REQUEST when its SQLAlchemy pool times out (64 writers on SQLite): retried later,
    never dropped; a real 400 (a param whose value changed) is still a refusal."""
    from mlflow.exceptions import RestException

    from aircolor.tracking.sender import is_transient

    pool = RestException({"error_code": "BAD_REQUEST", "message": "QueuePool limit of size 5 overflow 10 reached, "
                                                                  "connection timed out, timeout 30.00"})
    changed = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "Changing param values is not "
                                                                                 "allowed. Param with key='a'"})
    assert is_transient(pool) and not is_transient(changed)
