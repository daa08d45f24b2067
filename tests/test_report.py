"""``aircolor report`` on an MLflow store with known values (real MLflow client, SQLite), checked by hand.

The store mimics a sweep of factor 2 (U-Net vs ResNet) with 3 seeds per configuration, one failed trial, one
trial stopped early by the scheduler, the gray-copy baseline, FID at several sample sizes, and one run whose
discriminator overpowers its generator from epoch 3 on. Every number asserted below is worked out in the
comments from the values logged here, not by re-running the report's code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "known-sweep"

# final val.fid per trial (config, seed): unet mean 10, resnet mean 20
FIDS = {("unet_256", 0): 9.0, ("unet_256", 1): 10.0, ("unet_256", 2): 11.0,
        ("resnet_9blocks", 0): 18.0, ("resnet_9blocks", 1): 20.0, ("resnet_9blocks", 2): 22.0}
DELTA_E = {("unet_256", 0): 5.0, ("unet_256", 1): 6.0, ("unet_256", 2): 7.0,
           ("resnet_9blocks", 0): 12.0, ("resnet_9blocks", 1): 13.0, ("resnet_9blocks", 2): 14.0}
BASELINE_FID, BASELINE_DE = 15.0, 10.0   # the gray copy: unet beats it, resnet does not


def _trial(client: MlflowClient, exp_id: str, parent: str, netg: str, seed: int, *, status: str = "FINISHED",
           epochs: int = 4, collapse: bool = False, stopped: bool = False, reason: str | None = None) -> str:
    run = client.create_run(exp_id, run_name=f"{netg}/seed{seed}", tags={
        "mlflow.parentRunId": parent, "trial_name": f"{netg}/seed{seed}", "sweep": EXPERIMENT, "family": "pix2pix",
        "factor_value.model.netG": netg, "tune.trial_id": f"t_{netg}_{seed}", "device": "cpu", "workers": "1",
        "nonstandard_weights": "true", "inception.weights_sha256": "abc123"})
    rid = run.info.run_id
    for k, v in {"train.seed": seed, "model.family": "pix2pix", "model.netG": netg, "model.gan_mode": "vanilla",
                 "train.n_epochs": 2, "train.n_epochs_decay": 2, "data.root": "/nonexistent/data"}.items():
        client.log_param(rid, k, str(v))
    client.log_metric(rid, "baseline.val.fid", BASELINE_FID, step=0)
    client.log_metric(rid, "baseline.val.delta_e2000", BASELINE_DE, step=0)
    final_fid, final_de = FIDS.get((netg, seed), 30.0), DELTA_E.get((netg, seed), 20.0)
    for epoch in range(1, epochs + 1):
        client.log_metric(rid, "epoch", epoch, step=epoch)
        client.log_metric(rid, "iteration", 10 * epoch, step=epoch)
        # the value at epoch e: final + (epochs_total - e) so curves fall towards the final value
        client.log_metric(rid, "val.fid", final_fid + (4 - epoch), step=epoch)
        client.log_metric(rid, "val.delta_e2000", final_de + (4 - epoch), step=epoch)
        client.log_metric(rid, "val.n_fake", 40, step=epoch)
        client.log_metric(rid, "val.n_real", 40, step=epoch)
        # FID_N = final + 80 / N exactly: FID-infinity is the final value when extrapolated
        for n in (10, 20, 40):
            client.log_metric(rid, f"val.fid_n{n}", final_fid + (4 - epoch) + 80 / n - 2, step=epoch)
        for it in range(10 * (epoch - 1) + 5, 10 * epoch + 1, 5):
            d = 1.0 if not (collapse and epoch >= 3) else 0.05
            g = 1.0 if not (collapse and epoch >= 3) else 4.0
            client.log_metric(rid, "loss.D_real", d / 2, step=it)
            client.log_metric(rid, "loss.D_fake", d / 2, step=it)
            client.log_metric(rid, "loss.G_GAN", g, step=it)
    if stopped:
        client.set_tag(rid, "stopped_early", "true")
    if reason:
        client.set_tag(rid, "failure_reason", reason)
    client.set_terminated(rid, status=status)
    return rid


@pytest.fixture(scope="module")
def known_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("known-store")
    uri = f"sqlite:///{root}/mlruns.db"
    client = MlflowClient(uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp_id, run_name=f"sweep:{EXPERIMENT}", tags={
        "aircolor.kind": "sweep", "sweep": EXPERIMENT, "sweep.status": "FINISHED"}).info.run_id
    for k, v in {"sweep.space": "search_spaces/pix2pix_generator.yaml", "sweep.search": "grid",
                 "sweep.metric": "val.fid", "sweep.mode": "min", "sweep.scheduler": "asha", "sweep.seeds": 3}.items():
        client.log_param(parent, k, str(v))
    for (netg, seed) in FIDS:
        _trial(client, exp_id, parent, netg, seed, collapse=(netg, seed) == ("resnet_9blocks", 2))
    _trial(client, exp_id, parent, "unet_256", 7, status="FAILED", epochs=1, reason="RuntimeError: CUDA out of memory")
    _trial(client, exp_id, parent, "resnet_9blocks", 8, status="KILLED", epochs=2, stopped=True)
    client.set_terminated(parent, "FINISHED")
    return uri


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aircolor", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def test_load_study_keeps_every_trial_and_groups_by_seed(known_store):
    from analysis.runs import load_study

    study = load_study([EXPERIMENT], known_store)
    t = study.trials
    assert len(t) == 8  # the sweep's parent run is metadata, not a trial
    assert sorted(t["config"].unique()) == ["resnet_9blocks", "unet_256"]
    assert t["outcome"].value_counts().to_dict() == {"completed": 6, "failed": 1, "stopped early": 1}
    failed = t[t["outcome"] == "failed"].iloc[0]
    assert failed["failure_reason"] == "RuntimeError: CUDA out of memory" and failed["seed"] == 7
    assert set(t["factor.model.netG"]) == {"unet_256", "resnet_9blocks"}
    assert study.nonstandard_weights
    assert study.sweeps[0]["params"]["sweep.scheduler"] == "asha"
    # losses sit at fractional epochs: iteration 5 of epoch 1 (iterations 1-10) is epoch 0.5
    h = study.history
    loss = h[(h["key"] == "loss.G_GAN") & (h["run_id"] == t["run_id"].iloc[0])]
    assert loss.set_index("step")["epoch"].to_dict()[5] == pytest.approx(0.5)
    assert loss.set_index("step")["epoch"].to_dict()[20] == pytest.approx(2.0)


def test_search_runs_pages_through_every_run(known_store, monkeypatch):
    import analysis.runs as runs

    monkeypatch.setattr(runs, "_PAGE", 3)  # 9 runs in pages of 3 (plus an empty end): every run comes back
    client = runs.client_for(known_store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert len(runs.search_all_runs(client, [exp.experiment_id])) == 9


def test_report_ranks_configurations_against_hand_computed_values(known_store, tmp_path):
    from analysis.report import ReportOptions, build_report

    out = tmp_path / "report"
    rep = build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=2000, samples=False))
    fid = rep.rankings["fid"].set_index("config")
    # unet: 9, 10, 11 -> mean 10, std 1; resnet: 18, 20, 22 -> mean 20, std 2 (the failed/stopped trials excluded)
    assert fid.loc["unet_256", "mean"] == pytest.approx(10.0) and fid.loc["unet_256", "std"] == pytest.approx(1.0)
    assert fid.loc["resnet_9blocks", "mean"] == pytest.approx(20.0)
    assert fid.loc["resnet_9blocks", "std"] == pytest.approx(2.0)
    assert fid.loc["unet_256", "n"] == 3 and fid.loc["unet_256", "rank"] == 1
    # bootstrap CI of the mean of {9, 10, 11}: resampled means lie in [9, 11]; symmetric data -> about centred
    lo, hi = fid.loc["unet_256", ["ci_low", "ci_high"]]
    assert 9.0 <= lo < 10.0 < hi <= 11.0
    # CIs [9,11] and [18,22] cannot overlap: distinguishable
    assert bool(fid.loc["unet_256", "distinguishable_from_next"]) is True
    # Delta E ranks the same way; the composite rank puts unet first
    assert rep.rankings["delta_e2000"].iloc[0]["config"] == "unet_256"
    assert rep.rankings["composite"].iloc[0]["config"] == "unet_256"
    # factor effect of netG on FID: unet mean 10 vs resnet mean 20 -> -10
    eff = rep.effects.set_index("level")
    assert eff.loc["unet_256", "diff"] == pytest.approx(-10.0)
    assert eff.loc["resnet_9blocks", "diff"] == pytest.approx(10.0)
    # Welch on {9,10,11} vs {18,20,22}: t = -10 / sqrt(1/3 + 4/3) = -7.746, df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2)
    # = 2.778/0.944 = 2.941; two-sided p = 2 * t.sf(7.746, 2.941) (one test in the Holm family: p unchanged)
    from scipy import stats as st

    p = 2 * st.t.sf(10 / (5 / 3) ** 0.5, (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2))
    assert eff.loc["unet_256", "welch_p"] == pytest.approx(p, rel=1e-6)
    assert eff.loc["unet_256", "p_holm"] == pytest.approx(p, rel=1e-6)
    # the collapse detector flags exactly resnet seed 2, from epoch 3
    diag = rep.diagnostics.set_index("trial")
    assert list(diag.index[diag["flag"]]) == ["resnet_9blocks/seed2"]
    assert diag.loc["resnet_9blocks/seed2", "began_epoch"] == 3


def test_report_files_say_what_a_reader_needs(known_store, tmp_path):
    from analysis.report import ReportOptions, build_report

    out = tmp_path / "report"
    build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=1000, samples=False))
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    for text in (md, html):
        assert "NON-STANDARD Inception weights" in text           # banner: the store's runs are tagged
        assert "gray copy (no colorization)" in text              # the baseline row
        assert "does NOT beat it" in text                         # resnet (mean 20) vs the gray copy (15)
        assert "CUDA out of memory" in text                       # the failed trial and why
        assert "stopped early" in text
        assert "FID-infinity" in text
        assert "D overpowering G" in text
    # FID_N = FID + 80/N - 2 at N = 10, 20, 40 -> extrapolated FID-infinity = FID - 2 per run; unet: 10 - 2 = 8
    fid_rows = [line for line in md.splitlines() if line.startswith("| unet_256 |")]
    assert any("| 8 |" in line for line in fid_rows), fid_rows
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    assert len(trials) == 8 and {"val.fid", "outcome", "config", "gpu_hours"} <= set(trials.columns)
    assert {"run_id", "key", "step", "epoch", "value"} <= set(history.columns)
    for stem in ("ranking_fid", "effects_fid", "curve_fid", "loss_best_worst", "parallel_coordinates"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
        assert (out / "figures" / f"{stem}.svg").is_file()
    assert not list(tmp_path.glob(".report.tmp-*"))  # the staging folder was renamed into place


def test_early_stopped_trials_are_ranked_only_at_the_last_common_budget(known_store, tmp_path):
    from analysis.report import ReportOptions, build_report

    out = tmp_path / "report"
    build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=500, samples=False))
    md = (out / "report.md").read_text()
    budget = md.split('<a id="budget"></a>')[1].split("<a id=")[0]
    # the stopped trial reached epoch 2, so every non-failed trial is compared at epoch 2, where val.fid = final + 2:
    # unet 11, 12, 13 -> 12; resnet 20, 22, 24 and the stopped trial 30 + 2 = 32 -> 24.5 (4 trials)
    assert "at epoch 2" in budget
    assert "| 1 | unet_256 | 12 |" in budget and "| 2 | resnet_9blocks | 24.5 |" in budget
    assert "| 4 |" in budget.split("| 2 | resnet_9blocks |")[1].splitlines()[0]  # n = 4 with the stopped trial
    # the final ranking compares full budgets only: resnet's mean there is 20 over its 3 completed seeds
    ranking = md.split('<a id="ranking"></a>')[1].split("<a id=")[0]
    assert "| 2 | resnet_9blocks | 20 |" in ranking


def test_fanova_importances_find_the_factor_that_matters():
    from analysis.importance import fanova_importances

    rng = np.random.default_rng(0)
    lrs = np.geomspace(5e-5, 1e-3, 16)
    trials = pd.DataFrame({"factor.train.lr_G": [f"{x:.6g}" for x in lrs],
                           "factor.model.ngf": [str(v) for v in rng.choice([32, 64], size=16)],
                           "val.fid": 100 * np.log10(lrs / 5e-5) + rng.normal(0, 0.5, 16)})
    imp = fanova_importances(trials, "val.fid", mode="min")
    assert set(imp) == {"train.lr_G", "model.ngf"} and sum(imp.values()) == pytest.approx(1.0)
    assert imp["train.lr_G"] > 0.8
    assert "at least 4 completed trials" in fanova_importances(trials.head(3), "val.fid")


def test_report_cli_errors_are_one_line(known_store, tmp_path):
    res = run_cli("report", "--experiment", "nope", "--tracking-uri", known_store, "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "no MLflow experiment named 'nope'" in res.stderr
    assert "Traceback" not in res.stderr and EXPERIMENT in res.stderr  # lists what exists
    res = run_cli("report", "--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{tmp_path}/missing.db",
                  "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "no MLflow store" in res.stderr and not (tmp_path / "missing.db").exists()
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    res = run_cli("report", "--experiment", EXPERIMENT, "--tracking-uri", known_store, "--out", str(precious))
    assert res.returncode == 2 and "not an aircolor report" in res.stderr
    assert (precious / "thesis.txt").read_text() == "do not delete"
    assert not (tmp_path / "r").exists()


def test_a_failed_report_leaves_the_previous_one_intact(known_store, tmp_path, monkeypatch):
    from analysis import figures
    from analysis.report import ReportOptions, build_report

    out = tmp_path / "report"
    build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=500, samples=False))
    before = (out / "index.html").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("figure backend exploded")

    monkeypatch.setattr(figures, "parallel_coordinates", broken)
    with pytest.raises(RuntimeError):
        build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=500, samples=False))
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left behind
    # a report over a report is allowed (the folder holds the marker)
    monkeypatch.undo()
    build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=500, samples=False, metric="delta_e2000"))
    assert "Ranking by" in (out / "report.md").read_text()


# --------------------------------------------------------------------------------------- end to end, real sweep
ARTIFACTS = Path(__import__("os").environ.get("AIRCOLOR_TEST_ARTIFACTS", REPO / "test-artifacts"))


def test_report_of_a_real_smoke_sweep_opens_cleanly_in_chromium(tmp_path, prepared_sample, ray_cluster):
    """A real smoke sweep (factor 2 x 2 seeds) on the session's Ray cluster -> `aircolor report` -> headless
    Chromium: no console errors, every image loaded; the screenshot is kept in test-artifacts/."""
    import os

    from browser import check_page, find_chromium

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    env = dict(ray_cluster["env"], RAY_ADDRESS=ray_cluster["address"], PYTHONUNBUFFERED="1")
    name = "report-e2e"
    sweep = subprocess.run([sys.executable, "-m", "aircolor", "sweep", "run",
                            str(REPO / "search_spaces" / "pix2pix_generator.yaml"), f"data.root={prepared_sample}",
                            "--name", name, "--smoke", "--metric", "delta_e2000", "--storage", str(tmp_path / "sw"),
                            "--cpus-per-trial", "1", "--max-concurrent", "2", "--scheduler", "none",
                            "--tracking-uri", uri], env=env, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, "-m", "aircolor", "report", "--experiment", name, "--tracking-uri", uri,
                          "--out", str(out), "--bootstrap", "1000"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(out / "index.html") in res.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials["config"].unique()) == ["resnet_9blocks", "unet_256"] and len(trials) == 4
    assert (trials["outcome"] == "completed").all()
    assert [c for c in trials.columns if c.startswith("val.fid_n")]  # FID at several sample sizes, for FID-infinity
    md = (out / "report.md").read_text()
    assert "gray copy (no colorization)" in md and "NON-STANDARD Inception weights" in md
    assert "figures/samples.png" in md  # the generators came back from MLflow and colorized the same photos
    browser = find_chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = check_page((out / "index.html").as_uri(), screenshot=ARTIFACTS / "report.png", chromium=browser)
    assert page.console_errors == []
    assert len(page.images) >= 6 and page.broken_images == []
    assert "aircolor comparison" in page.title and "Ranking by" in page.text
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000
