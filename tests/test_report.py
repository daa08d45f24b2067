"""``aircolor report`` on an MLflow store with known values (real MLflow client, SQLite), checked by hand.

The store mimics a sweep of factor 2 (U-Net vs ResNet) with 3 seeds per configuration, one failed trial, one
trial stopped early by the scheduler, FID at several sample sizes, and one run whose discriminator overpowers its
generator from epoch 3 on. Experiment ``known-sweep`` logs what aircolor logs today: the delivered image on
validation (``val.*``) and, once at the end of a full budget, on the test split (``test.*``), the generator's raw
output (``raw.*``), and the three baselines (gray copy, constant tint, chroma by lightness) on both splits.
Experiment ``known-sweep-old`` holds the same trials as older runs logged them: ``val.*`` and the gray copy only.
Every number asserted below is worked out in the comments from the values logged here, not by re-running the
report's code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT, OLD_EXPERIMENT = "known-sweep", "known-sweep-old"

# final val.fid per trial (config, seed): unet mean 10, resnet mean 20
FIDS = {("unet_256", 0): 9.0, ("unet_256", 1): 10.0, ("unet_256", 2): 11.0,
        ("resnet_9blocks", 0): 18.0, ("resnet_9blocks", 1): 20.0, ("resnet_9blocks", 2): 22.0}
DELTA_E = {("unet_256", 0): 5.0, ("unet_256", 1): 6.0, ("unet_256", 2): 7.0,
           ("resnet_9blocks", 0): 12.0, ("resnet_9blocks", 1): 13.0, ("resnet_9blocks", 2): 14.0}
BASELINE_FID, BASELINE_DE = 15.0, 10.0   # the gray copy on val: unet beats it, resnet does not

# The test split, per seed 0, 1, 2 (completed trials only; the failed and stopped trials never score it):
#   test.fid          unet 10, 11, 12 (mean 11)          resnet 19, 21, 23 (mean 21)
#   test.delta_e2000  unet 5.5, 6, 6.5 (mean 6)          resnet 7.5, 8.5, 9.5 (mean 8.5)
#   raw.test.de       unet 6.5, 7, 7.5 (mean 7)          resnet 9, 10, 11 (mean 10)
#   test.colorfulness unet 35, 36, 37 (gap to 40: 4)     resnet 37.5, 38, 38.5 (gap 2)
#   test.psnr         unet 20, 21, 22 (mean 21)          resnet 25, 26, 27 (mean 26); on val it is the other way
#   test.diversity    resnet only: 2, 3, 4 (mean 3)
TEST = {"unet_256": {"fid": (10, 11, 12), "delta_e2000": (5.5, 6.0, 6.5), "colorfulness": (35, 36, 37),
                     "psnr": (20, 21, 22)},
        "resnet_9blocks": {"fid": (19, 21, 23), "delta_e2000": (7.5, 8.5, 9.5), "colorfulness": (37.5, 38, 38.5),
                           "psnr": (25, 26, 27), "diversity": (2, 3, 4)}}
RAW_TEST_DE = {"unet_256": (6.5, 7.0, 7.5), "resnet_9blocks": (9.0, 10.0, 11.0)}
VAL_PSNR = {"unet_256": (25, 26, 27), "resnet_9blocks": (20, 21, 22)}
REAL_COLORFULNESS = 40.0
# The baselines (one dataset: the same in every trial). On test, per metric: the strongest prior is the constant
# tint for FID (13 < 17) and chroma by lightness for Delta E (8 < 9) and PSNR (23.5 > 19).
BASELINES = {
    "test": {"baseline": {"fid": 16, "delta_e2000": 10, "colorfulness": 0, "psnr": 18},
             "prior_tint": {"fid": 13, "delta_e2000": 9, "colorfulness": 10, "psnr": 19},
             "prior_lightness": {"fid": 17, "delta_e2000": 8, "colorfulness": 20, "psnr": 23.5}},
    "val": {"baseline": {"fid": BASELINE_FID, "delta_e2000": BASELINE_DE, "colorfulness": 0, "psnr": 18},
            "prior_tint": {"fid": 14, "delta_e2000": 9, "colorfulness": 10, "psnr": 19},
            "prior_lightness": {"fid": 16, "delta_e2000": 8.5, "colorfulness": 20, "psnr": 19.5}},
}


def _metrics(values: dict[str, float], step: int) -> list[Metric]:
    return [Metric(k, float(v), 0, step) for k, v in values.items()]


def _new_keys(netg: str, seed: int, *, finished: bool) -> tuple[dict[str, float], dict[str, float]]:
    """(at step 0, at the last epoch): the priors on val; the test split, raw output and test baselines at the end."""
    first = {f"{p}.val.{m}": v for p, per in BASELINES["val"].items() for m, v in per.items() if p != "baseline"}
    first.update({f"{p}.val.colorfulness_real": REAL_COLORFULNESS for p in BASELINES["val"]})
    first["baseline.val.colorfulness"] = BASELINES["val"]["baseline"]["colorfulness"]
    last = {"val.psnr": VAL_PSNR[netg][seed] if seed < 3 else 15.0, "raw.val.delta_e2000": 99.0}
    if not finished:
        return first, last
    test = {f"test.{m}": v[seed] for m, v in TEST[netg].items()}
    test["test.colorfulness_real"] = REAL_COLORFULNESS
    test["raw.test.delta_e2000"] = RAW_TEST_DE[netg][seed]
    test.update({f"test.fid_n{n}": test["test.fid"] + 80 / n - 2 for n in (10, 20, 40)})  # FID-infinity: fid - 2
    test.update({f"{p}.test.{m}": v for p, per in BASELINES["test"].items() for m, v in per.items()})
    test.update({f"{p}.test.colorfulness_real": REAL_COLORFULNESS for p in BASELINES["test"]})
    return first, {**last, **test}


def _history(netg: str, seed: int, epochs: int, collapse: bool) -> list[tuple[int, dict[str, float]]]:
    """Per epoch: (step, values) of the validation metrics, and the losses (step = iteration)."""
    final_fid, final_de = FIDS.get((netg, seed), 30.0), DELTA_E.get((netg, seed), 20.0)
    steps = []
    for epoch in range(1, epochs + 1):
        # the value at epoch e: final + (epochs_total - e) so curves fall towards the final value
        values = {"epoch": epoch, "iteration": 10 * epoch, "val.fid": final_fid + (4 - epoch),
                  "val.delta_e2000": final_de + (4 - epoch), "val.n_fake": 40, "val.n_real": 40}
        # FID_N = final + 80 / N exactly: FID-infinity is the final value when extrapolated
        values.update({f"val.fid_n{n}": final_fid + (4 - epoch) + 80 / n - 2 for n in (10, 20, 40)})
        steps.append((epoch, values))
        for it in range(10 * (epoch - 1) + 5, 10 * epoch + 1, 5):
            d = 1.0 if not (collapse and epoch >= 3) else 0.05
            g = 1.0 if not (collapse and epoch >= 3) else 4.0
            steps.append((it, {"loss.D_real": d / 2, "loss.D_fake": d / 2, "loss.G_GAN": g}))
    return steps


def _trial(client: MlflowClient, exp_id: str, parent: str, netg: str, seed: int, *, status: str = "FINISHED",
           epochs: int = 4, collapse: bool = False, stopped: bool = False, reason: str | None = None,
           sweep: str = EXPERIMENT, new_keys: bool = True) -> str:
    tags = {"mlflow.parentRunId": parent, "trial_name": f"{netg}/seed{seed}", "sweep": sweep, "family": "pix2pix",
            "factor_value.model.netG": netg, "tune.trial_id": f"t_{netg}_{seed}", "device": "cpu", "workers": "1",
            "nonstandard_weights": "true", "inception.weights_sha256": "abc123",
            **({"stopped_early": "true"} if stopped else {}), **({"failure_reason": reason} if reason else {})}
    rid = client.create_run(exp_id, run_name=f"{netg}/seed{seed}", tags=tags).info.run_id
    params = [Param(k, str(v)) for k, v in {
        "train.seed": seed, "model.family": "pix2pix", "model.netG": netg, "model.gan_mode": "vanilla",
        "train.n_epochs": 2, "train.n_epochs_decay": 2, "data.root": "/nonexistent/data"}.items()]
    metrics = _metrics({"baseline.val.fid": BASELINE_FID, "baseline.val.delta_e2000": BASELINE_DE}, step=0)
    for step, values in _history(netg, seed, epochs, collapse):
        metrics += _metrics(values, step=step)
    if new_keys:
        first, last = _new_keys(netg, seed, finished=status == "FINISHED" and not stopped)
        metrics += _metrics(first, step=0) + _metrics(last, step=epochs)
    # one batch per run (MLflow takes up to 1000 metrics): single log_metric calls would each be an SQLite write
    assert len(metrics) <= 1000
    client.log_batch(rid, metrics=metrics, params=params)
    client.set_terminated(rid, status=status)
    return rid


def _experiment(client: MlflowClient, root: Path, name: str, *, new_keys: bool) -> None:
    exp_id = client.create_experiment(name, artifact_location=(root / name).as_uri())
    parent = client.create_run(exp_id, run_name=f"sweep:{name}", tags={
        "aircolor.kind": "sweep", "sweep": name, "sweep.status": "FINISHED"}).info.run_id
    for k, v in {"sweep.space": "search_spaces/pix2pix_generator.yaml", "sweep.search": "grid",
                 "sweep.metric": "val.fid", "sweep.mode": "min", "sweep.scheduler": "asha", "sweep.seeds": 3}.items():
        client.log_param(parent, k, str(v))
    kw = {"sweep": name, "new_keys": new_keys}
    for (netg, seed) in FIDS:
        _trial(client, exp_id, parent, netg, seed, collapse=(netg, seed) == ("resnet_9blocks", 2), **kw)
    _trial(client, exp_id, parent, "unet_256", 7, status="FAILED", epochs=1, reason="RuntimeError: CUDA out of memory",
           **kw)
    _trial(client, exp_id, parent, "resnet_9blocks", 8, status="KILLED", epochs=2, stopped=True, **kw)
    client.set_terminated(parent, "FINISHED")


@pytest.fixture(scope="module")
def known_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("known-store")
    uri = f"sqlite:///{root}/mlruns.db"
    client = MlflowClient(uri)
    _experiment(client, root, EXPERIMENT, new_keys=True)
    _experiment(client, root, OLD_EXPERIMENT, new_keys=False)
    return uri


@pytest.fixture(scope="module")
def fid_report(known_store, tmp_path_factory):
    """The report of the current-format experiment, ranked by FID (the default), built once for several tests."""
    from analysis.report import ReportOptions, build_report

    out = tmp_path_factory.mktemp("fid-report") / "report"
    return build_report([EXPERIMENT], known_store, out, ReportOptions(n_boot=2000, samples=False))


@pytest.fixture(scope="module")
def de_report(known_store, tmp_path_factory):
    """The same, ranked by Delta E 2000."""
    from analysis.report import ReportOptions, build_report

    out = tmp_path_factory.mktemp("de-report") / "report"
    return build_report([EXPERIMENT], known_store, out,
                        ReportOptions(n_boot=2000, samples=False, metric="delta_e2000"))


def _section(md: str, anchor: str) -> str:
    return md.split(f'<a id="{anchor}"></a>')[1].split("<a id=")[0]


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


def test_report_ranks_configurations_against_hand_computed_values(fid_report):
    rep = fid_report
    assert rep.split == "test"  # the runs scored the test split: the final tables use it
    fid = rep.rankings["fid"].set_index("config")
    # test.fid: unet 10, 11, 12 -> mean 11, std 1; resnet 19, 21, 23 -> mean 21, std 2 (failed/stopped: no test.*)
    assert fid.loc["unet_256", "mean"] == pytest.approx(11.0) and fid.loc["unet_256", "std"] == pytest.approx(1.0)
    assert fid.loc["resnet_9blocks", "mean"] == pytest.approx(21.0)
    assert fid.loc["resnet_9blocks", "std"] == pytest.approx(2.0)
    assert fid.loc["unet_256", "n"] == 3 and fid.loc["unet_256", "rank"] == 1
    # bootstrap CI of the mean of {10, 11, 12}: resampled means lie in [10, 12]; symmetric data -> about centred
    lo, hi = fid.loc["unet_256", ["ci_low", "ci_high"]]
    assert 10.0 <= lo < 11.0 < hi <= 12.0
    # CIs [10,12] and [19,23] cannot overlap: distinguishable
    assert bool(fid.loc["unet_256", "distinguishable_from_next"]) is True
    # the selection ranking is on validation: val.fid unet 9, 10, 11 -> 10
    assert rep.selection["fid"].set_index("config").loc["unet_256", "mean"] == pytest.approx(10.0)
    assert rep.best == "unet_256"
    # Delta E ranks the same way; PSNR (26 vs 21) and the colourfulness gap (2 vs 4) put resnet first, so the
    # composite rank (mean of the FID, Delta E, PSNR and gap ranks) ties them at 1.5
    assert rep.rankings["delta_e2000"].iloc[0]["config"] == "unet_256"
    comp = rep.rankings["composite"].set_index("config")
    assert comp["mean_rank"].to_dict() == {"unet_256": 1.5, "resnet_9blocks": 1.5}
    assert set(comp["composite_rank"]) == {1}
    # factor effect of netG on test FID: unet mean 11 vs resnet mean 21 -> -10
    eff = rep.effects.set_index("level")
    assert eff.loc["unet_256", "diff"] == pytest.approx(-10.0)
    assert eff.loc["resnet_9blocks", "diff"] == pytest.approx(10.0)
    assert rep.effects.attrs["key"] == "test.fid"
    # Welch on {10,11,12} vs {19,21,23}: t = -10 / sqrt(1/3 + 4/3) = -7.746, df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2)
    # = 2.778/0.944 = 2.941; two-sided p = 2 * t.sf(7.746, 2.941) (one test in the Holm family: p unchanged)
    from scipy import stats as st

    p = 2 * st.t.sf(10 / (5 / 3) ** 0.5, (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2))
    assert eff.loc["unet_256", "welch_p"] == pytest.approx(p, rel=1e-6)
    assert eff.loc["unet_256", "p_holm"] == pytest.approx(p, rel=1e-6)
    # the collapse detector flags exactly resnet seed 2, from epoch 3
    diag = rep.diagnostics.set_index("trial")
    assert list(diag.index[diag["flag"]]) == ["resnet_9blocks/seed2"]
    assert diag.loc["resnet_9blocks/seed2", "began_epoch"] == 3


def test_report_files_say_what_a_reader_needs(fid_report):
    out = fid_report.out_dir
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    for text in (md, html):
        assert "NON-STANDARD Inception weights" in text           # banner: the store's runs are tagged
        assert "gray copy (no colorization)" in text              # the baseline row
        assert "does NOT beat it" in text                         # resnet (test mean 21) vs the gray copy (16)
        assert "CUDA out of memory" in text                       # the failed trial and why
        assert "stopped early" in text
        assert "FID-infinity" in text
        assert "D overpowering G" in text
        assert "ranked on the test split" in text and "selection used validation" in text
    # test.fid_N = test.fid + 80/N - 2 at N = 10, 20, 40 -> FID-infinity = test.fid - 2 per run; unet: 11 - 2 = 9
    fid_rows = [line for line in _section(md, "fid").splitlines() if line.startswith("| unet_256 |")]
    assert fid_rows and "| 9 |" in fid_rows[0], fid_rows
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    assert len(trials) == 8 and {"val.fid", "test.fid", "outcome", "config", "gpu_hours"} <= set(trials.columns)
    assert {"run_id", "key", "step", "epoch", "value"} <= set(history.columns)
    for stem in ("ranking_fid", "effects_fid", "curve_fid", "loss_best_worst", "parallel_coordinates",
                 "perception_distortion"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
        assert (out / "figures" / f"{stem}.svg").is_file()
        assert f"figures/{stem}.png" in md and f"figures/{stem}.png" in html
    assert not list(out.parent.glob(".report.tmp-*"))  # the staging folder was renamed into place


def test_early_stopped_trials_are_ranked_only_at_the_last_common_budget(fid_report):
    md = (fid_report.out_dir / "report.md").read_text()
    budget = _section(md, "budget")
    # the stopped trial reached epoch 2, so every non-failed trial is compared at epoch 2, where val.fid = final + 2:
    # unet 11, 12, 13 -> 12; resnet 20, 22, 24 and the stopped trial 30 + 2 = 32 -> 24.5 (4 trials)
    assert "at epoch 2" in budget
    assert "| 1 | unet_256 | 12 |" in budget and "| 2 | resnet_9blocks | 24.5 |" in budget
    assert "| 4 |" in budget.split("| 2 | resnet_9blocks |")[1].splitlines()[0]  # n = 4 with the stopped trial
    # its baselines are the validation ones: gray copy 15 (the final table's, on test, is 16)
    assert "| - | gray copy (no colorization) | 15 |" in budget
    # the final ranking compares full budgets only, on test: resnet's mean there is 21 over its 3 completed seeds
    ranking = _section(md, "ranking")
    assert "| 2 | resnet_9blocks | 21 |" in ranking and "| - | gray copy (no colorization) | 16 |" in ranking


def _rows(table_md: str) -> dict[str, dict[str, str]]:
    """The first Markdown table's rows ({column: cell}) by their configuration cell (the second column)."""
    lines = table_md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:end]]
    return {r[1]: dict(zip(rows[0], r)) for r in rows[2:]}


BASELINE_LABELS = ("gray copy (no colorization)", "constant tint (training median a*b*)",
                   "chroma by lightness (training mean a*b* per L*)")


def test_every_ranking_table_has_the_three_baselines(fid_report):
    out = fid_report.out_dir
    md = (out / "report.md").read_text()
    tables = [block for block in md.split("\n\n") if block.startswith("| rank | configuration |")]
    # the primary (FID), the other metrics (Delta E, PSNR, colourfulness gap; no KID/IS/SSIM logged), early stopped
    assert len(tables) == 5
    for table in tables:
        assert all(label in _rows(table) for label in BASELINE_LABELS), table
    # on test, FID: gray copy 16, constant tint 13 (the strongest prior), chroma by lightness 17
    fid = _rows(_section(md, "ranking"))
    assert fid[BASELINE_LABELS[0]]["mean"] == "16" and fid[BASELINE_LABELS[1]]["mean"] == "13"
    assert fid[BASELINE_LABELS[2]]["mean"] == "17"
    assert fid[BASELINE_LABELS[1]]["vs strongest prior"] == "strongest prior"
    for name in ("fid", "delta_e2000", "psnr", "colorfulness_gap"):
        csv = pd.read_csv(out / f"ranking_{name}.csv")
        base = csv[csv["kind"] == "baseline"].set_index("baseline")
        assert list(base.index) == ["gray", "tint", "lightness"] and base["mean"].notna().all(), name
        assert set(csv.loc[csv["kind"] == "configuration", "config"]) == {"unet_256", "resnet_9blocks"}
        assert (csv["split"] == "test").all()
    # the colourfulness gap of the baselines on test: |0 - 40| = 40, |10 - 40| = 30, |20 - 40| = 20
    gap = pd.read_csv(out / "ranking_colorfulness_gap.csv").set_index("config")
    assert [gap.loc[label, "mean"] for label in BASELINE_LABELS] == [40, 30, 20]


def test_configurations_that_do_not_beat_the_strongest_prior_are_marked(de_report):
    out = de_report.out_dir
    md = (out / "report.md").read_text()
    # test Delta E: resnet 8.5 beats the gray copy (10) but not chroma by lightness (8): +0.5; unet 6: -2
    rows = _rows(_section(md, "ranking"))
    assert rows["resnet_9blocks"]["vs gray copy"] == "-1.5"
    assert rows["resnet_9blocks"]["vs strongest prior"] == "+0.5 (does NOT beat the strongest prior)"
    assert rows["unet_256"]["vs strongest prior"] == "-2"
    assert rows["unet_256"]["raw Delta E"] == "7" and rows["resnet_9blocks"]["diversity"] == "3"
    csv = pd.read_csv(out / "ranking_delta_e2000.csv").set_index("config")
    assert csv.loc["resnet_9blocks", "beats_gray_copy"] and not csv.loc["resnet_9blocks", "beats_strongest_prior"]
    assert csv.loc["unet_256", "beats_strongest_prior"] and csv.loc["unet_256", "strongest_prior"] == "lightness"
    # the main table shows the raw output's Delta E (unet 7, resnet 10) and BicycleGAN-style diversity (resnet 3)
    header = [c.strip() for c in _section(md, "ranking").split("| rank |")[1].splitlines()[0].split("|")]
    assert "raw Delta E" in header and "diversity" in header
    assert csv.loc["unet_256", "raw_Delta_E"] == 7 and csv.loc["resnet_9blocks", "raw_Delta_E"] == 10
    assert csv.loc["resnet_9blocks", "diversity"] == 3 and np.isnan(csv.loc["unet_256", "diversity"])
    # PSNR: on test resnet (26) is first, on validation unet (26 vs 21) was: the table shows both ranks
    psnr = pd.read_csv(out / "ranking_psnr.csv").set_index("config")
    assert psnr.loc["resnet_9blocks", "rank"] == 1 and psnr.loc["resnet_9blocks", "val_rank"] == 2
    # unet's test PSNR 21 beats the gray copy (18) but not chroma by lightness (23.5)
    assert not psnr.loc["unet_256", "beats_strongest_prior"] and psnr.loc["unet_256", "beats_gray_copy"]


def test_headline_gain_over_the_strongest_prior_with_its_ci(fid_report, de_report):
    # Selected on validation: unet (val FID 10 < 20; val Delta E 6 < 13). Its test values and the strongest prior:
    # FID {10, 11, 12} vs constant tint 13: gain (13 - 11) / 13 = 15.38%. The percentile bootstrap of the mean of
    # three values resamples 27 equally likely triples; all three the lowest value has probability 1/27 = 3.7% >
    # 2.5%, so the 95% CI of the mean is exactly [10, 12] -> gain CI [(13 - 12) / 13, (13 - 10) / 13] = [7.69, 23.08]%.
    g = fid_report.gain
    assert (g.mean, g.reference, g.n) == (11.0, 13.0, 3) and g.beats is True
    assert g.pct == pytest.approx(200 / 13) and (g.ci_low, g.ci_high) == (pytest.approx(100 / 13),
                                                                          pytest.approx(300 / 13))
    md = (fid_report.out_dir / "report.md").read_text()
    assert ("Best configuration (selected on validation by FID*): unet_256: test FID* 11 over 3 seed(s); the gray "
            "copy scores 16. Against the strongest prior, constant tint 13: 15.4% better (95% CI 7.7-23.1%).") in md
    # Delta E {5.5, 6, 6.5} vs chroma by lightness 8: (8 - 6) / 8 = 25%, CI [(8 - 6.5) / 8, (8 - 5.5) / 8]
    g = de_report.gain
    assert g.pct == pytest.approx(25.0) and (g.ci_low, g.ci_high) == (pytest.approx(18.75), pytest.approx(31.25))
    md = (de_report.out_dir / "report.md").read_text()
    assert "Against the strongest prior, chroma by lightness 8: 25.0% better (95% CI 18.8-31.2%)." in md


def test_perception_distortion_front(de_report):
    # (test Delta E, |colourfulness - 40|): unet (6, 4), resnet (8.5, 2), gray copy (10, 40), constant tint (9, 30),
    # chroma by lightness (8, 20): unet beats every baseline on both axes, resnet has the smallest gap -> the
    # front is {unet, resnet}
    table = de_report.pareto.set_index("point")
    assert table.loc["unet_256", ["x", "y"]].tolist() == [6.0, 4.0]
    assert table.loc["resnet_9blocks", ["x", "y"]].tolist() == [8.5, 2.0]
    assert table.loc["chroma by lightness", ["x", "y"]].tolist() == [8.0, 20.0]
    assert set(table.index[table["on_front"]]) == {"unet_256", "resnet_9blocks"}
    md = (de_report.out_dir / "report.md").read_text()
    front = _section(md, "tradeoff")
    assert "| unet_256 | configuration | 6 | 4 | 3 |" in front
    assert "| resnet_9blocks | configuration | 8.5 | 2 | 3 |" in front
    assert "| gray copy |" not in front
    svg = (de_report.out_dir / "figures" / "perception_distortion.svg").read_text()
    assert all(text in svg for text in ("gray copy", "constant tint", "chroma by lightness", "Pareto front"))
    chart = (de_report.out_dir / "figures" / "ranking_delta_e2000.svg").read_text()
    assert all(text in chart for text in ("gray copy (no colorization)", "constant tint", "chroma by lightness",
                                          "does not beat the strongest prior"))


def test_old_runs_fall_back_to_validation_and_say_so(known_store, tmp_path):
    """Runs from before the test split and the priors: ranked on val, loudly, and the missing baselines named."""
    from analysis.report import ReportOptions, build_report

    rep = build_report([OLD_EXPERIMENT], known_store, tmp_path / "old", ReportOptions(n_boot=500, samples=False))
    assert rep.split == "val" and rep.gain is None and rep.pareto is None
    fid = rep.rankings["fid"].set_index("config")
    assert fid.loc["unet_256", "mean"] == pytest.approx(10.0) and fid.loc["resnet_9blocks", "mean"] == pytest.approx(20)
    md = (tmp_path / "old" / "report.md").read_text()
    assert "FALL BACK TO THE VALIDATION SPLIT" in md and "Ranked on the VALIDATION split" in md
    assert "priors were not logged by these runs" in md and "no 'raw Delta E' column" in md
    rows = _rows(_section(md, "ranking"))
    assert rows[BASELINE_LABELS[0]]["mean"] == "15" and rows[BASELINE_LABELS[1]]["mean"] == "not logged"
    assert "No completed trial logged both" in _section(md, "tradeoff")
    csv = pd.read_csv(tmp_path / "old" / "ranking_fid.csv")
    assert (csv["split"] == "val").all() and csv.loc[csv["baseline"] == "tint", "mean"].isna().all()


def test_report_page_shows_the_baselines_in_chromium(de_report):
    """The HTML as a browser renders it: the three baseline rows and the perception-distortion figure load."""
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import check_page, find_chromium

    browser = find_chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = check_page((de_report.out_dir / "index.html").as_uri(), chromium=browser)
    assert page.console_errors == [] and page.broken_images == []
    lines = page.text.splitlines()
    for label in BASELINE_LABELS:
        assert sum(line.startswith(f"-\t{label}\t") for line in lines) == 5, label  # a row in all 5 tables
    loaded = [img for img in page.images if img["src"].endswith("/figures/perception_distortion.png")]
    assert len(loaded) == 1 and loaded[0]["naturalWidth"] > 300
    assert "ranked on the test split" in page.text


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
    assert res.returncode == 2 and "no tracking store" in res.stderr and not (tmp_path / "missing.db").exists()
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


def test_report_of_a_real_smoke_sweep_opens_cleanly_in_chromium(tmp_path, smoke_sweep, mlflow_uri):
    """The session's real smoke sweep (factor 5 x 2 seeds, every metric, on the session's Ray cluster and MLflow
    server: tests/conftest.py) -> `aircolor report` -> headless Chromium: no console errors, every image loaded; the
    screenshot is kept in test-artifacts/."""
    import os

    from browser import check_page, find_chromium

    name, uri, sweep = smoke_sweep["name"], mlflow_uri, smoke_sweep["result"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, "-m", "aircolor", "report", "--experiment", name, "--tracking-uri", uri,
                          "--out", str(out), "--bootstrap", "1000"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(out / "index.html") in res.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials["config"].unique()) == ["cut", "fastcut"] and len(trials) == 2
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
