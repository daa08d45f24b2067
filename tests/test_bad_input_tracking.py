"""Bad-input corpus: ``aircolor tracking replay`` and tracking URIs.

A spool is deleted only when the server acknowledged every record in it; a record the server refuses stays in
the spool with the reason. A file that is not a spool aircolor wrote is one line, exit 2, and left untouched
(not even a torn last line is cut off), while the valid spools beside a corrupt one are still sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
from badinput import invoke, run_bad, snapshot

from aircolor.tracking import Tracker
from aircolor.tracking.spool import VERSION, find_spools

HEADER = {"kind": "header", "version": VERSION, "key": "k" * 32, "tracking_uri": "http://127.0.0.1:9",
          "experiment": "x", "artifact_location": None, "run_name": "r", "parent_run_id": None, "run_id": None,
          "created": 0}


def _lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _offline_spool(folder: Path, experiment: str) -> Path:
    """A real spool: a tracker whose server never answered logged params, tags and metrics, then ended."""
    from mlflow_server import free_port

    with Tracker(f"http://127.0.0.1:{free_port()}", experiment, "offline", spool_dir=folder, retry_min_s=0.05,
                 retry_max_s=0.2) as tracker:
        tracker.log_params({"model.ngf": 8})
        tracker.set_tags({"family": "pix2pix"})
        for step in range(3):
            tracker.log_metrics({"loss": float(step)}, step)
    (spool,) = find_spools(folder)
    return spool


def test_a_refused_record_keeps_its_spool(mlflow_uri, tmp_path, capsys):
    """A params record with no start record: MLflow cannot take it, so nothing is acknowledged or deleted."""
    spool = tmp_path / "spool" / ("k" * 32 + ".spool.jsonl")
    spool.parent.mkdir()
    spool.write_bytes(_lines({**HEADER, "tracking_uri": mlflow_uri},
                             {"kind": "params", "seq": 1, "params": {"model.ngf": "8"}}))
    before = spool.read_bytes()
    outcome = invoke(capsys, ["tracking", "replay", str(spool.parent)])
    assert outcome.code == 1, outcome
    assert "0 sent completely" in outcome.out and "kept for a later replay" in outcome.out
    assert "record 1 (params)" in outcome.out, outcome.out
    assert spool.read_bytes() == before  # no ack: the record stays for a later replay


def test_a_corrupt_spool_beside_a_valid_one(mlflow_uri, tmp_path, capsys):
    folder = tmp_path / "spools"
    valid = _offline_spool(folder, "mixed-valid")
    corrupt = folder / ("c" * 32 + ".spool.jsonl")
    corrupt.write_bytes(b"[1, 2, 3]\n")
    outcome = invoke(capsys, ["tracking", "replay", str(folder), "--tracking-uri", mlflow_uri])
    assert outcome.code == 1 and "Traceback" not in outcome.err, outcome
    assert "1 sent completely" in outcome.out and f"{corrupt}" in outcome.out and "JSON list" in outcome.out
    assert not valid.exists() and corrupt.read_bytes() == b"[1, 2, 3]\n"
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mixed-valid").experiment_id])
    assert run.data.params == {"model.ngf": "8"} and len(client.get_metric_history(run.info.run_id, "loss")) == 3


def test_a_silent_server_keeps_the_spool_within_seconds(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "spools"
    spool = _offline_spool(folder, "silent")
    before = snapshot(folder)
    monkeypatch.setenv("AIRCOLOR_TRACKING_TIMEOUT", "3")
    started = time.monotonic()
    outcome = invoke(capsys, ["tracking", "replay", str(folder), "--tracking-uri", "http://127.0.0.1:9"])
    assert time.monotonic() - started < 30
    assert outcome.code == 1 and "127.0.0.1:9" in outcome.out and spool.exists(), outcome
    assert snapshot(folder) == before


NOT_SPOOLS = {
    "a JSON list": (b"[1, 2, 3]\n", ["line 1", "JSON list"]),
    "an ack without upto": (_lines(HEADER, {"kind": "ack"}), ["line 2", "'upto'"]),
    "an ack with a text upto": (_lines(HEADER, {"kind": "ack", "upto": "3"}), ["line 2", "'upto'"]),
    "a non-integer seq": (_lines(HEADER, {"kind": "params", "seq": "one", "params": {}}), ["line 2", "'seq'"]),
    "a binary file": (bytes(range(256)) * 4 + b"\n", ["line 1", "not"]),
    "not JSON": (b"hello world\n", ["line 1", "not JSON"]),
    "no header": (_lines({"kind": "params", "seq": 1, "params": {}}), ["no header"]),
    "a header without a URI": (_lines({**HEADER, "tracking_uri": None}), ["no tracking URI"]),
    "a newer version": (_lines({**HEADER, "version": VERSION + 1}), ["spool version"]),
    "an unknown record": (_lines(HEADER, {"kind": "mystery"}), ["unknown record kind 'mystery'"]),
    "a run_id without an id": (_lines(HEADER, {"kind": "run_id"}), ["'run_id'"]),
    "a torn binary tail": (b"\x00\xff\x00 no newline at all", ["no header"]),
}


@pytest.mark.parametrize("data,words", NOT_SPOOLS.values(), ids=NOT_SPOOLS.keys())
def test_a_file_that_is_not_a_spool(tmp_path, capsys, data, words):
    folder = tmp_path / "spools"
    folder.mkdir()
    (folder / ("b" * 32 + ".spool.jsonl")).write_bytes(data)
    run_bad(capsys, ["tracking", "replay", str(folder)], watch=[tmp_path], words=words)
    run_bad(capsys, ["tracking", "replay", str(folder / ("b" * 32 + ".spool.jsonl"))], watch=[tmp_path],
            words=["pass a spool folder"])


def test_two_corrupt_spools_are_counted(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / (name * 32 + ".spool.jsonl")).write_bytes(b"[]\n")
    run_bad(capsys, ["tracking", "replay", str(tmp_path)], watch=[tmp_path], words=["and 1 more file"])


CASES = {
    "missing folder": (["tracking", "replay", "nope"], ["nope", "does not exist"]),
    "unknown scheme": (["tracking", "replay", ".", "--tracking-uri", "ftp://x"], ["ftp://x", "scheme"]),
    "no subcommand": (["tracking"], ["COMMAND", "required"]),
    "no folder": (["tracking", "replay"], ["SPOOL_DIR", "required"]),
    "unknown subcommand": (["tracking", "send"], ["invalid choice: 'send'"]),
}


@pytest.mark.parametrize("argv,words", CASES.values(), ids=CASES.keys())
def test_tracking_bad_input(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    run_bad(capsys, argv, watch=[tmp_path], words=words)


def test_an_empty_folder_has_nothing_to_replay(tmp_path, capsys):
    outcome = invoke(capsys, ["tracking", "replay", str(tmp_path)])
    assert outcome.code == 0 and "nothing to replay" in outcome.out


def test_an_empty_tracking_uri_variable_is_unset(tmp_path, monkeypatch):
    from aircolor.tracking import resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
