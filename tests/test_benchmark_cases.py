"""The benchmark cases (``benchmarks/cases_*.py``) run in quick mode and return well-formed records.

Only the shape and the arithmetic of the records are checked, never a speed: timings on a shared CI machine mean
nothing. ``sweep_overhead`` starts its own Ray and runs two sweeps (about 100 s), so here only its argument
building (validated by the sweep driver itself) and its read-back of ``startup_s`` from MLflow are tested; packed
``trials`` run at a tiny size with a one-second window.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import cases_colorize, cases_data, cases_eval, cases_packing, cases_sweep, colorize_agreement

MODULES = {"evaluation": cases_eval, "data": cases_data, "colorize": cases_colorize, "sweep": cases_sweep,
           "packing": cases_packing}
RECORD_KEYS = {"section", "case", "config", "metrics", "unit_notes"}
CPU = torch.device("cpu")
QUICK_CASES = [(section, name) for section, module in MODULES.items() for name in module.CASES
               if name not in ("sweep_overhead", "trials", "ray")]  # tested below, smaller


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch folder for all cases, as ``benchmarks.run`` shares ``runs/bench`` across a run."""
    return tmp_path_factory.mktemp("bench-work")


@pytest.fixture(scope="module")
def results(work: Path, sample_data: Path) -> dict[str, list[dict]]:
    """Every quick case run once (repeats=1), keyed by case name; the colorize cases on small photos and models
    (their shape is what is tested here; the dropout agreement trains a model, run by the benchmark itself)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cases_colorize, "QUICK_PHOTOS", {"demo": (1, 320), "unet256": (1, 300)})
        mp.setitem(cases_colorize.MODELS, "unet256", ["model.ngf=8", "data.size=256", "model.netG=unet_256"])
        mp.setattr(colorize_agreement, "_historical", lambda: [p[:300, :280] for p in HISTORICAL(sample_data)])
        mp.setattr(colorize_agreement, "_dropout_agreement", lambda **_: [])
        mp.setenv("AIRCOLOR_AERIAL_DIR", str(sample_data / "color"))
        mp.setattr(colorize_agreement, "ACCURACY_REGIONS", ("oam_kampala_fair",))
        mp.setattr(colorize_agreement, "ACCURACY_SIDE", 2)
        return {name: MODULES[section].CASES[name](quick=True, device=CPU, work=work, repeats=1)
                for section, name in QUICK_CASES}


def HISTORICAL(sample_data: Path) -> list:  # noqa: N802 - a constant-like helper
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255
            for p in sorted((sample_data / "historical").rglob("*.jpg"))[:1]]


def check_records(records: list[dict], section: str, case: str) -> dict:
    assert isinstance(records, list) and records
    for rec in records:
        assert set(rec) == RECORD_KEYS
        assert rec["section"] == section and rec["case"] == case
        json.loads(json.dumps(rec["config"]))  # small and JSON-able
        assert rec["config"]["repeats"] == 1
        assert rec["metrics"], "a record without metrics"
        for key, value in rec["metrics"].items():
            assert isinstance(value, float), key
            assert math.isfinite(value) and value > 0, f"{case}.{key} = {value}"
            assert rec["unit_notes"].get(key), f"{case}.{key} has no unit note"
    return records[0]


def test_every_case_takes_the_runner_keywords() -> None:
    for module in MODULES.values():
        for name, fn in module.CASES.items():
            params = inspect.signature(fn).parameters
            assert set(params) == {"quick", "device", "work", "repeats"}, name
            assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), name


@pytest.mark.parametrize(("section", "name"), QUICK_CASES)
def test_quick_case_returns_well_formed_records(results: dict, section: str, name: str) -> None:
    check_records(results[name], section, name)


def test_decode_speedup_is_the_ratio_of_rates(results: dict, work: Path) -> None:
    rec = check_records(results["decode"], "data", "decode")
    m = rec["metrics"]
    assert m["speedup"] == pytest.approx(m["cache_images_per_s"] / m["files_images_per_s"])
    assert m["files_vs_reference"] == pytest.approx(m["files_images_per_s"] / m["reference_pil_images_per_s"])
    assert rec["config"]["images"] == len(list((work / "data-256" / "aligned" / "train").glob("*.png")))


def test_reference_item_matches_the_dataset_shapes(work: Path) -> None:
    path = next((cases_data.prepared(work, 256) / "aligned" / "train").glob("*.png"))
    item = cases_data.reference_pil_item(path)
    assert item["A"].shape == (1, 256, 256) and item["B"].shape == (3, 256, 256)
    assert -1 <= float(item["A"].min()) and float(item["B"].max()) <= 1


def test_real_statistics_speedup_is_cold_over_warm(results: dict) -> None:
    m = check_records(results["real_statistics"], "evaluation", "real_statistics")["metrics"]
    assert m["speedup"] == pytest.approx(m["cold_s"] / m["warm_s"])
    assert m["cold_images_per_s"] == pytest.approx(16 / m["cold_s"])


def test_inception_rate_matches_its_time(results: dict) -> None:
    rec = check_records(results["inception_features"], "evaluation", "inception_features")
    assert rec["metrics"]["images_per_s"] == pytest.approx(rec["config"]["images"] / rec["metrics"]["seconds"])


def test_colorize_speed_compares_every_setting_with_the_loop_before(results: dict) -> None:
    records = results["speed"]
    for model in ("demo", "unet256"):
        mine = [r for r in records if r["config"]["model"] == model]
        assert [r["config"]["variant"] for r in mine][0] == "before" and len(mine) == 5
        before = mine[0]["metrics"]["seconds"]
        for r in mine:
            assert r["metrics"]["speedup"] == pytest.approx(before / r["metrics"]["seconds"])
            px = int(r["config"]["image_px"].split("x")[0]) * int(r["config"]["image_px"].split("x")[1])
            assert r["metrics"]["megapixels_per_s"] * r["metrics"]["seconds"] == pytest.approx(px / 1e6)
    assert {r["config"]["tile_px"] for r in records if r["config"]["model"] == "demo"} == {64, 128, 256}


def test_colorize_threads_compares_one_stream_with_streams(results: dict) -> None:
    for r in results["threads"]:
        m = r["metrics"]
        assert m["ratio"] == pytest.approx(m["streams_tiles_per_s"] / m["one_stream_tiles_per_s"])
    assert torch.get_num_threads() == results["threads"][0]["config"]["cores"]  # put back


def test_colorize_agreement_finds_before_and_now_alike_and_larger_tiles_not(results: dict) -> None:
    by = {r["config"]["variant"]: r["metrics"] for r in results["agreement"]}
    assert by["before vs now"]["max_level_diff"] <= 1 + 1e-6  # the speed work did not move the colours
    assert by["--tile 256 vs default"]["delta_e_mean"] > 0.01  # a larger tile does
    assert by["bf16 vs fp32"]["delta_e_mean"] < 1


def test_colorize_accuracy_builds_mosaics_of_neighbouring_chips(results: dict, sample_data: Path) -> None:
    mosaics = colorize_agreement.mosaics(sample_data / "color" / "oam_kampala_fair", 2)
    assert mosaics and all(m.shape == (512, 512, 3) for m in mosaics)
    records = results["accuracy"]
    settings = [label for label, _ in colorize_agreement.ACCURACY_SETTINGS]
    assert [r["config"]["variant"] for r in records] == settings
    assert len({r["metrics"]["gray_copy_delta_e"] for r in records}) == 1


def test_colorize_ray_runs_and_rates() -> None:
    runs = dict(cases_colorize.ray_runs(CPU))
    assert runs["one process"] == ["--device", "cpu"] and all("--ray" in a for k, a in runs.items() if k != "one process")
    assert cases_colorize._rate({"run": {"megapixels_per_s": 2.5}, "files": []}) == 2.5
    files = [{"status": "done", "pixels": 2_000_000, "seconds": 2.0}, {"status": "failed", "pixels": 0, "seconds": 1}]
    assert cases_colorize._rate({"files": files}) == pytest.approx(1.0)


def test_random_weights_are_made_once_when_none_are_configured(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AIRCOLOR_INCEPTION_WEIGHTS", raising=False)
    path, source = cases_eval.inception_weights(tmp_path)
    assert source == "random" and path == tmp_path / "inception-random.pth" and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert cases_eval.inception_weights(tmp_path) == (path, "random") and path.stat().st_mtime_ns == mtime


@pytest.mark.skip(reason="starts a local Ray and runs two 4-trial sweeps (~100 s); run it by hand with "
                         "'python -m benchmarks.cases_sweep --quick'")
def test_sweep_overhead_end_to_end(tmp_path: Path) -> None:  # pragma: no cover
    records = cases_sweep.sweep_overhead(quick=True, device=CPU, work=tmp_path, repeats=1)
    assert [r["config"]["max_concurrent"] for r in records] == [1, 2]


def test_sweep_options_are_valid_for_the_driver(work: Path, inception_weights: Path) -> None:
    from sweeps.driver import validate

    root = cases_data.prepared(work, 32)
    for c in cases_sweep.concurrency_levels(quick=False):
        options = cases_sweep.sweep_options(cases_sweep.sweep_args(max_concurrent=c, data_root=root,
                                                                    weights=inception_weights))
        assert options.max_concurrent == c and options.smoke and options.scheduler == "none"
        assert options.metric == "delta_e2000" and options.cpus_per_trial == 1.0 and options.gpus_per_trial == 0
        assert options.overrides == [f"data.root={root}", f"metrics.inception_weights={inception_weights}"]
        space = validate(str(cases_sweep.SPACE), options)  # builds every trial's config, strictly
        assert len(space.grid()) == 4
    assert cases_sweep.concurrency_levels(quick=True) == [1, 2]


def test_startup_times_are_read_from_child_runs_only(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench-sweep")
    parent = client.create_run(exp, tags={"aircolor.kind": "sweep"})
    client.log_metric(parent.info.run_id, "startup_s", 99.0)
    for value in (1.5, 2.5, None):
        kid = client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
        if value is not None:
            client.log_metric(kid.info.run_id, "startup_s", value)
    values, runs = cases_sweep._startup_times(uri, "bench-sweep")
    assert sorted(values) == [1.5, 2.5] and runs == 3
    assert cases_sweep._startup_times(uri, "no-such-sweep") == ([], 0)


def test_packed_trials_run_concurrently_and_add_up(prepared_sample: Path) -> None:
    """Two packed processes and one alone, at 32 px: each record sums its processes, scaling is relative to the
    single process, and the two really overlapped (both waited at the barrier, so each window saw the other)."""
    base = {"family": "pix2pix", "size": 32, "ngf": 8, "batch": 1, "data": str(prepared_sample), "loop": "ours",
            "device": "cpu", "warmup": 1, "iters": 0, "repeats": 1, "duration_s": 1.0, "threads": 1,
            "overrides": ["model.netG=unet_auto", "data.num_workers=0"]}
    one, two = cases_packing.measure_packed([{"case": base, "n": 1}, {"case": base, "n": 2}], CPU)
    for rec, n in ((one, 1), (two, 2)):
        assert set(rec) == RECORD_KEYS and rec["section"] == "packing"
        assert rec["case"] == f"pix2pix-batch1-x{n}" and rec["config"]["trials"] == n
        m = rec["metrics"]
        assert set(m) <= set(rec["unit_notes"]) and all(math.isfinite(v) and v > 0 for v in m.values())
        assert m["images_per_s_per_trial"] == pytest.approx(m["images_per_s_per_device"] / n)
        assert m["slowest_trial_images_per_s"] <= m["images_per_s_per_trial"] + 1e-9
    assert one["metrics"]["scaling"] == pytest.approx(1.0)
    assert two["metrics"]["scaling"] == pytest.approx(two["metrics"]["images_per_s_per_device"]
                                                      / one["metrics"]["images_per_s_per_device"])
    with pytest.raises(RuntimeError, match="packed process exited"):
        cases_packing.measure_packed([{"case": {**base, "data": str(prepared_sample / "missing")}, "n": 2}], CPU)


def test_packing_plan_follows_the_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA: the study's configuration with 1, 2 and 4 processes and one larger batch; CPU: 1 and 2 processes
    sharing the cores."""
    monkeypatch.setattr(cases_packing, "prepared", lambda work, size: tmp_path / f"data-{size}")
    cuda = cases_packing.plan(False, torch.device("cuda"), tmp_path, 3)
    assert [(r["case"]["size"], r["case"]["ngf"], r["case"]["batch"], r["n"]) for r in cuda] == [
        (256, 64, 1, 1), (256, 64, 1, 2), (256, 64, 1, 4), (256, 64, 16, 1)]
    monkeypatch.setattr(cases_packing.os, "cpu_count", lambda: 2)
    cpu = cases_packing.plan(True, CPU, tmp_path, 1)
    assert [(r["n"], r["case"]["threads"]) for r in cpu] == [(1, 2), (2, 1)]


def test_peak_memory_of_a_case_excludes_the_process_that_started_it() -> None:
    """A case runs in a child of the orchestrator; its peak RSS must be its own. (``ru_maxrss`` would report the
    orchestrator's size here: exec keeps the replaced address space's high-water mark.)"""
    import ast
    import subprocess
    import sys

    ballast = bytearray(1536 * 2 ** 20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    code = "import torch; from benchmarks.timing import peak_memory; print(peak_memory(torch.device('cpu')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    del ballast
    peak = ast.literal_eval(done.stdout.strip())["peak_rss_mib"]
    assert 50 < peak < 1400, peak


def test_tracking_load_case_counts_every_value_through_a_kill_and_restart(work):
    """A tiny load case (4 writers, 30 steps, SQLite): the server is SIGKILLed and restarted mid-run, and the record
    still counts every value logged as in MLflow (values_lost 0) and renders as a row of the tracking table."""
    from benchmarks import cases_tracking
    from benchmarks.table import render

    got = cases_tracking.load_case("sqlite", 4, True, work, steps=30, processes=2, end_wait_s=60.0)
    m = got["metrics"]
    assert set(got) == RECORD_KEYS and got["section"] == "tracking" and got["case"] == "sqlite-4"
    assert m["values_logged"] == 4 * 30 * len(cases_tracking.KEYS) == m["values_in_mlflow"]
    assert m["values_lost"] == 0 and m["runs"] == 4 and m["artifacts"] == 4 and m["records_left_in_spools"] == 0
    assert m["outage_s"] >= cases_tracking.OUTAGE_S and m["log_p99_ms"] >= m["log_p50_ms"] > 0
    table = render([got], env={"device": "cpu"}, quick=True, run_id="t", seconds=1.0)
    assert m["duplicate_runs"] == 0
    assert "**Tracking under load**" in table and "| sqlite | 4 | 600 |" in table and "0 lost, 0 duplicate" in table


def test_colorspace_cases_measure_both_implementations_against_skimage(tmp_path: Path, sample_data: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The colorspace section at a tiny size (one 2 x 3 x 8 x 8 batch, three real tiles, the full Lab grid): one
    speed and one exactness record per implementation, aircolor's within the tests' tolerance of skimage and
    building no tensor from Python data per call; and its table."""
    from benchmarks import cases_colorspace
    from benchmarks.table import render

    monkeypatch.setattr(cases_colorspace, "SHAPES", ((2, 3, 8, 8),))
    tiles = sorted((sample_data / "color").rglob("*.jpg"))[:3]
    monkeypatch.setattr(cases_colorspace, "tile_paths", lambda quick: tiles)
    for fn in cases_colorspace.CASES.values():
        params = inspect.signature(fn).parameters
        assert set(params) == {"quick", "device", "work", "repeats"}
    speed = cases_colorspace.speed(quick=True, device=CPU, work=tmp_path, repeats=1)
    exact = cases_colorspace.exactness(quick=True, device=CPU, work=tmp_path, repeats=1)
    names = list(cases_colorspace.implementations())
    assert names[0] == "aircolor" and [r["config"]["implementation"] for r in speed] == names
    assert [r["config"]["implementation"] for r in exact] == names
    for rec in speed + exact:
        assert set(rec) == RECORD_KEYS and rec["section"] == "colorspace" and rec["config"]["repeats"] == 1
        for key, value in rec["metrics"].items():
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, key
            assert value > 0 or key == "host_tensors_per_round_trip", key
            assert rec["unit_notes"].get(key), key
    for rec in speed:
        m = rec["metrics"]
        assert m["rgb_to_lab_megapixels_per_s"] * m["rgb_to_lab_ms"] / 1000 == pytest.approx(2 * 8 * 8 / 1e6)
    assert speed[0]["metrics"]["rgb_to_lab_vs_aircolor"] == 1.0 == speed[0]["metrics"]["lab_to_rgb_vs_aircolor"]
    ours = exact[0]["metrics"]
    assert exact[0]["config"]["tiles"] == 3
    assert ours["rgb_to_lab_max"] < 1e-3 and ours["rgb_to_lab_float64_max"] < 1e-9 and ours["gamut_edges_max"] < 1e-3
    assert ours["lab_to_rgb_max_levels"] < 0.01 and ours["gamut_grid_max_levels"] < 0.05
    assert ours["host_tensors_per_round_trip"] == 0
    table = render(speed + exact, env={"device": "cpu"}, quick=True, run_id="t", seconds=1.0)
    assert "**sRGB <-> L\\*a\\*b\\***" in table and "| aircolor | " in table and "2x3x8x8" in table
