"""Bad-input corpus: ``aircolor report``, plus what the report says it ran on.

``report`` is a read-only client of a tracking store: a store that is not there is one line (a missing SQLite
file or file-store folder is never created, a server that does not answer fails within the tracking timeout),
and a failed report leaves nothing behind: no staging folder, no parent folders of ``--out``.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from badinput import invoke, run_bad
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

EXPERIMENT = "tiny-sweep"
# val.fid ranks "a" best, val.delta_e2000 ranks "b" best: the sweep optimised delta_e2000
VALUES = {("a", 0): (10.0, 9.0), ("a", 1): (11.0, 9.5), ("b", 0): (20.0, 4.0), ("b", 1): (21.0, 4.5)}


def _parent(client: MlflowClient, exp_id: str, name: str, metric: str = "val.delta_e2000") -> str:
    rid = client.create_run(exp_id, run_name=f"sweep:{name}", tags={
        "aircolor.kind": "sweep", "sweep": name, "sweep.status": "FINISHED"}).info.run_id
    params = {"sweep.search": "grid", "sweep.metric": metric, "sweep.mode": "min", "sweep.seeds": 2,
              "sweep.num_samples": 20}
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(rid, "FINISHED")
    return rid


def _trial(client: MlflowClient, exp_id: str, parent: str, netg: str, seed: int, *, metrics: bool = True) -> None:
    tags = {"mlflow.parentRunId": parent, "trial_name": f"{netg}/seed{seed}", "family": "pix2pix",
            "factor_value.model.netG": netg}
    rid = client.create_run(exp_id, run_name=f"{netg}/seed{seed}", tags=tags).info.run_id
    fid, de = VALUES[(netg, seed)]
    values = {"val.fid": fid, "val.delta_e2000": de, "baseline.val.fid": 15.0, "baseline.val.delta_e2000": 7.0}
    client.log_batch(rid, params=[Param("train.seed", str(seed)), Param("model.netG", netg)],
                     metrics=[Metric(k, v, 0, 1) for k, v in values.items()] if metrics else [])
    if metrics:
        client.set_terminated(rid, "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A SQLite store: the tiny grid sweep, an experiment with only its parent run, and one whose trials are
    still running and have logged nothing."""
    root = tmp_path_factory.mktemp("report-store")
    uri = f"sqlite:///{root}/mlruns.db"
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(root / EXPERIMENT).as_uri())
    parent = _parent(client, exp, EXPERIMENT)
    for netg, seed in VALUES:
        _trial(client, exp, parent, netg, seed)
    empty = client.create_experiment("only-parent", artifact_location=(root / "only-parent").as_uri())
    _parent(client, empty, "only-parent")
    running = client.create_experiment("nothing-finished", artifact_location=(root / "nothing-finished").as_uri())
    parent = _parent(client, running, "nothing-finished")
    _trial(client, running, parent, "a", 0, metrics=False)
    return uri


def _argv(store: str, out: Path, *extra: str, experiment: str = EXPERIMENT) -> list[str]:
    return ["report", "--experiment", experiment, "--tracking-uri", store, "--out", str(out), "--no-samples",
            "--bootstrap", "200", *extra]


@pytest.mark.parametrize("experiment, words", [
    ("nope", ["no MLflow experiment named 'nope'", EXPERIMENT]),
    ("only-parent", ["no trial runs", "only-parent"]),
    ("nothing-finished", ["no trial logged val.delta_e2000"]),
])
def test_experiments_without_a_report(store, tmp_path, capsys, experiment, words):
    """Nothing is created, not even the parents of --out."""
    run_bad(capsys, _argv(store, tmp_path / "new" / "sub" / "report", experiment=experiment), watch=[tmp_path],
            words=words)


def test_out_is_a_file(store, tmp_path, capsys):
    (tmp_path / "report").write_text("mine")
    run_bad(capsys, _argv(store, tmp_path / "report"), watch=[tmp_path], words=["is a file"])


def test_out_inside_a_file(store, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    run_bad(capsys, _argv(store, tmp_path / "notes.txt" / "report"), watch=[tmp_path], words=["is a file"])


def test_out_in_an_unwritable_folder(store, tmp_path, capsys):
    run_bad(capsys, _argv(store, Path("/proc/aircolor-report")), watch=[tmp_path], words=["not writable"])


def test_out_is_a_users_folder(store, tmp_path, capsys):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("do not delete")
    run_bad(capsys, _argv(store, tmp_path / "thesis"), watch=[tmp_path], words=["not an aircolor report"])


@pytest.mark.parametrize("extra, words", [
    (["--metric", "bogus"], ["--metric", "invalid choice"]),
    (["--metric", "psnr"], ["no trial logged val.psnr"]),
    (["--format", "pdf"], ["unrecognized arguments: --format"]),
    (["--top-k", "0"], ["--top-k"]),
    (["--bootstrap", "10"], ["--bootstrap"]),
])
def test_bad_options(store, tmp_path, capsys, extra, words):
    run_bad(capsys, _argv(store, tmp_path / "report", *extra), watch=[tmp_path], words=words)


def test_data_folder_that_does_not_exist(store, tmp_path, capsys):
    run_bad(capsys, [*_argv(store, tmp_path / "report"), "--data", str(tmp_path / "nodata")], watch=[tmp_path],
            words=["--data", "no such folder"])


@pytest.mark.parametrize("uri, words", [
    ("sqlite:///{tmp}/missing.db", ["missing.db"]),
    ("file://{tmp}/mlruns", ["folder not found"]),
    ("http://127.0.0.1:9", ["cannot reach", "127.0.0.1:9", "connection refused"]),
])
def test_tracking_stores_that_are_not_there(tmp_path, capsys, uri, words):
    """A read-only command: a missing SQLite file or file store is not created."""
    run_bad(capsys, _argv(uri.format(tmp=tmp_path), tmp_path / "report"), watch=[tmp_path], words=words)


def test_missing_default_store_in_the_working_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_bad(capsys, ["report", "--experiment", EXPERIMENT, "--out", "report"], watch=[tmp_path],
            words=["mlruns.db"])


def test_a_silent_server_fails_within_the_tracking_timeout(tmp_path, capsys, monkeypatch):
    """A server that accepts the connection and never answers: one line naming the URI after the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("AIRCOLOR_TRACKING_TIMEOUT", "2")
        start = time.monotonic()
        run_bad(capsys, _argv(uri, tmp_path / "report"), watch=[tmp_path], words=["cannot reach", uri])
    assert time.monotonic() - start < 15


def test_bad_tracking_timeout(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AIRCOLOR_TRACKING_TIMEOUT", "soon")
    run_bad(capsys, _argv("http://127.0.0.1:9", tmp_path / "report"), watch=[tmp_path],
            words=["AIRCOLOR_TRACKING_TIMEOUT"])


# ------------------------------------------------------------------------------- what a good report says


def test_report_ranks_by_the_sweeps_metric_and_says_what_it_does(store, tmp_path, capsys):
    """No --metric: the sweep's own metric (delta_e2000 here, where "b" is best while FID prefers "a"), said on
    stderr with the other stages; stdout carries only the report's paths; a grid shows what actually ran."""
    out = tmp_path / "report"
    outcome = invoke(capsys, _argv(store, out))
    assert outcome.code == 0, outcome.err
    stages = [line for line in outcome.err.splitlines() if line.strip()]
    assert all(line.startswith("report: ") for line in stages) and 3 <= len(stages) <= 8, stages
    assert any("delta_e2000" in line and "the metric the sweep optimised" in line for line in stages), stages
    assert [line.split()[-1] for line in outcome.out.splitlines()] == [str(out / "index.html"),
                                                                       str(out / "report.md")]
    md = (out / "report.md").read_text()
    assert "delta_e2000, the metric the sweep optimised" in md
    assert "grid: 2 combination(s) x 2 seed(s); 4 trial runs" in md
    assert "samples / seeds" not in md and "20 / 2" not in md
    ranking = (out / "ranking_delta_e2000.csv").read_text().splitlines()
    assert ranking[1].split(",")[0] == "b", ranking


def test_help_has_a_description_and_an_example(capsys):
    outcome = invoke(capsys, ["report", "--help"])
    assert outcome.code == 0
    assert "example:" in outcome.out and "aircolor report --experiment" in outcome.out
    assert "Rank a sweep's configurations" in outcome.out
