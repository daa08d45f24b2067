"""Tests for ``analysis.stats``: every expected number below is worked out by hand (or by an independent,
deliberately naive computation), never by calling the function under test a second time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.stats import (
    METRICS,
    FidInfinity,
    MetricSpec,
    add_derived_columns,
    baseline_values,
    baselines_differ,
    bootstrap_ci,
    bootstrap_diff_ci,
    composite_rank,
    d_overpowering_g,
    factor_effects,
    fid_infinity,
    fid_sizes_from_history,
    fid_sizes_from_row,
    gain_over,
    holm,
    last_common_budget,
    pareto_front,
    rank_configurations,
    strongest_prior,
    values_at_epoch,
)


def _trial(run_id: str, config: str, seed: float, value: float, outcome: str = "completed", **factors: str) -> dict:
    return {"run_id": run_id, "config": config, "seed": seed, "outcome": outcome, "val.fid": value,
            "val.psnr": value, **{f"factor.{k.replace('__', '.')}": v for k, v in factors.items()}}


def _naive_percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 100]) written out by hand."""
    pos = q / 100 * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


# --- registry and derived columns ---------------------------------------------------------------------------------

def test_metric_registry_keys_modes_and_order():
    assert list(METRICS) == ["fid", "kid", "is", "psnr", "ssim", "delta_e2000", "colorfulness_gap"]
    assert METRICS["fid"] == MetricSpec("val.fid", METRICS["fid"].label, "min")
    assert {n: (m.key, m.mode) for n, m in METRICS.items()} == {
        "fid": ("val.fid", "min"), "kid": ("val.kid_mean", "min"), "is": ("val.is_mean", "max"),
        "psnr": ("val.psnr", "max"), "ssim": ("val.ssim", "max"), "delta_e2000": ("val.delta_e2000", "min"),
        "colorfulness_gap": ("val.colorfulness_gap", "min")}
    with pytest.raises(TypeError):
        METRICS["new"] = MetricSpec("x", "x", "min")  # type: ignore[index]


def test_add_derived_columns_adds_gap_for_both_prefixes_without_mutating():
    trials = pd.DataFrame({"val.colorfulness": [30.0, 50.0, np.nan], "val.colorfulness_real": [40.0, 40.0, 40.0],
                           "baseline.val.colorfulness": [10.0, 45.0, 1.0],
                           "baseline.val.colorfulness_real": [40.0, 40.0, 40.0]})
    before = trials.copy()
    out = add_derived_columns(trials)
    pd.testing.assert_frame_equal(trials, before)
    assert out["val.colorfulness_gap"].iloc[:2].tolist() == [10.0, 10.0]
    assert math.isnan(out["val.colorfulness_gap"].iloc[2])
    assert out["baseline.val.colorfulness_gap"].tolist() == [30.0, 5.0, 39.0]
    assert "val.colorfulness_gap" not in add_derived_columns(pd.DataFrame({"val.colorfulness": [1.0]})).columns


# --- bootstrap ---------------------------------------------------------------------------------------------------

def test_bootstrap_ci_of_constant_sample_is_the_constant():
    assert bootstrap_ci([2.5, 2.5, 2.5, 2.5]) == (2.5, 2.5)


def test_bootstrap_ci_matches_a_naive_loop_with_the_same_seed():
    values, n_boot = [1.0, 2.0, 3.0, 4.0], 2000
    lo, hi = bootstrap_ci(values, n_boot=n_boot, level=0.9, seed=7)
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    idx = np.random.default_rng(7).integers(0, 4, size=(n_boot, 4))
    means = sorted(sum(values[j] for j in row) / 4 for row in idx.tolist())
    assert lo == pytest.approx(_naive_percentile(means, 5.0), abs=1e-12)
    assert hi == pytest.approx(_naive_percentile(means, 95.0), abs=1e-12)
    wide = bootstrap_ci(values, n_boot=n_boot, level=0.99, seed=7)
    assert wide[0] <= lo and wide[1] >= hi


def test_bootstrap_ci_drops_nans_and_needs_two_values():
    assert bootstrap_ci([1.0, np.nan, 2.0, 3.0, 4.0], seed=3) == bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=3)
    assert all(math.isnan(v) for v in bootstrap_ci([5.0, np.nan]))
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_bootstrap_diff_ci():
    assert bootstrap_diff_ci([5.0, 5.0, 5.0], [2.0, 2.0]) == (3.0, 3.0)
    a, b, n_boot = [1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 5.0], 1000
    lo, hi = bootstrap_diff_ci(a, b, n_boot=n_boot, seed=1)
    rng = np.random.default_rng(1)   # a's resamples are drawn first, then b's
    ia, ib = rng.integers(0, 3, size=(n_boot, 3)).tolist(), rng.integers(0, 4, size=(n_boot, 4)).tolist()
    diffs = sorted(sum(a[j] for j in ra) / 3 - sum(b[j] for j in rb) / 4 for ra, rb in zip(ia, ib))
    assert (lo, hi) == pytest.approx((_naive_percentile(diffs, 2.5), _naive_percentile(diffs, 97.5)), abs=1e-12)
    assert all(math.isnan(v) for v in bootstrap_diff_ci([1.0], [1.0, 2.0]))
    assert all(math.isnan(v) for v in bootstrap_diff_ci([1.0, 2.0], [np.nan, 3.0]))


# --- Holm ----------------------------------------------------------------------------------------------------------

def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=0, atol=1e-15)


def test_holm_nans_do_not_count_and_results_are_capped():
    out = holm([0.01, np.nan, 0.04])   # m = 2: 0.01*2 = 0.02, 0.04*1 -> max(0.02, 0.04)
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04], atol=1e-15)
    assert math.isnan(out[1])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    assert holm([]).shape == (0,)


# --- ranking -------------------------------------------------------------------------------------------------------

@pytest.fixture
def ranked_trials() -> pd.DataFrame:
    rows = [
        _trial("a0", "A", 0, 10.0, netG="unet"), _trial("a1", "A", 1, 12.0, netG="unet"),
        _trial("a2", "A", 2, 14.0, netG="unet"), _trial("a3", "A", 3, 1.0, "failed", netG="unet"),
        _trial("a4", "A", 4, np.nan, netG="unet"),
        _trial("b1", "B", 1, 22.0, netG="resnet"), _trial("b0", "B", 0, 20.0, netG="resnet"),
        _trial("c0", "C", 0, 15.0, netG="pixel"),
        _trial("d0", "D", 0, 5.0, "stopped early", netG="tiny"), _trial("d1", "D", 1, 7.0, "stopped early",
                                                                         netG="tiny"),
    ]
    return pd.DataFrame(rows)


def test_rank_configurations_means_std_seeds_and_exclusions(ranked_trials):
    out = rank_configurations(ranked_trials, "fid", n_boot=2000)
    assert out["config"].tolist() == ["A", "C", "B"]
    assert out["rank"].tolist() == [1, 2, 3]
    assert out["mean"].tolist() == [12.0, 15.0, 21.0]
    assert out["std"].iloc[0] == pytest.approx(2.0)              # deviations -2, 0, 2 -> sqrt(8 / 2)
    assert out["std"].iloc[2] == pytest.approx(math.sqrt(2.0))   # deviations -1, 1 -> sqrt(2 / 1)
    assert math.isnan(out["std"].iloc[1])
    assert out["n"].tolist() == [3, 1, 2]                        # A's failed and NaN trials are left out
    assert out["seeds"].tolist() == ["0,1,2", "0", "0,1"]
    assert out["factor.netG"].tolist() == ["unet", "pixel", "resnet"]
    assert 10.0 <= out["ci_low"].iloc[0] < 12.0 < out["ci_high"].iloc[0] <= 14.0
    assert math.isnan(out["ci_low"].iloc[1]) and math.isnan(out["ci_high"].iloc[1])
    # C has no CI (n = 1), so neither A->C nor C->B can be told apart; the last row has no next
    assert out["distinguishable_from_next"].tolist() == [False, False, None]


def test_rank_configurations_distinguishable_when_cis_apart(ranked_trials):
    out = rank_configurations(ranked_trials[ranked_trials["config"] != "C"], "fid", n_boot=2000)
    assert out["config"].tolist() == ["A", "B"]
    assert out["distinguishable_from_next"].tolist() == [True, None]    # A's CI <= 14 < 20 <= B's CI


def test_rank_configurations_include_and_mode(ranked_trials):
    out = rank_configurations(ranked_trials, "fid", include=("completed", "stopped early"), n_boot=500)
    assert out["config"].tolist() == ["D", "A", "C", "B"]
    assert out["mean"].iloc[0] == 6.0
    with_failed = rank_configurations(ranked_trials, "fid", include=("completed", "failed"), n_boot=500)
    assert with_failed.set_index("config").loc["A", "mean"] == pytest.approx((10 + 12 + 14 + 1) / 4)
    psnr = rank_configurations(ranked_trials, "psnr", n_boot=500)   # same numbers, higher is better
    assert psnr["config"].tolist() == ["B", "C", "A"]


def test_rank_configurations_ties_share_the_min_rank():
    trials = pd.DataFrame([_trial("e0", "E", 0, 1.0), _trial("e1", "E", 1, 2.0), _trial("f0", "F", 0, 2.0),
                           _trial("f1", "F", 1, 1.0), _trial("g0", "G", 0, 9.0)])
    out = rank_configurations(trials, "fid", n_boot=500)
    assert out["config"].tolist() == ["E", "F", "G"]
    assert out["rank"].tolist() == [1, 1, 3]
    assert out["distinguishable_from_next"].iloc[0] is False


def test_rank_configurations_rejects_unknown_names(ranked_trials):
    with pytest.raises(ValueError, match="fid.*kid"):
        rank_configurations(ranked_trials, "fdi")
    with pytest.raises(ValueError, match="completed"):
        rank_configurations(ranked_trials, "fid", include=("complete",))


def test_rank_configurations_derives_colorfulness_gap():
    trials = pd.DataFrame({"run_id": ["x", "y"], "config": ["X", "Y"], "seed": [0, 0],
                           "outcome": ["completed"] * 2, "val.colorfulness": [35.0, 48.0],
                           "val.colorfulness_real": [40.0, 40.0]})
    out = rank_configurations(trials, "colorfulness_gap", n_boot=100)
    assert out["config"].tolist() == ["X", "Y"] and out["mean"].tolist() == [5.0, 8.0]


def test_composite_rank_hand_example():
    def ranking(pairs: dict[str, int]) -> pd.DataFrame:
        return pd.DataFrame({"config": list(pairs), "rank": list(pairs.values())})

    out = composite_rank({"fid": ranking({"A": 1, "C": 2, "B": 3}), "psnr": ranking({"B": 1, "C": 2, "A": 3}),
                          "kid": ranking({"A": 1, "B": 2})})
    # A: (1 + 3 + 1) / 3 = 5/3; B: (3 + 1 + 2) / 3 = 2; C: (2 + 2) / 2 = 2 over 2 metrics
    assert out["config"].tolist() == ["A", "B", "C"]
    assert out["mean_rank"].tolist() == pytest.approx([5 / 3, 2.0, 2.0])
    assert out["n_metrics"].tolist() == [3, 3, 2]
    assert out["composite_rank"].tolist() == [1, 2, 2]
    assert out.set_index("config").loc["C", "rank.psnr"] == 2 and math.isnan(out.set_index("config").loc["C",
                                                                                                        "rank.kid"])


# --- factor effects ------------------------------------------------------------------------------------------------

@pytest.fixture
def factor_trials() -> pd.DataFrame:
    rows = [
        _trial("t1", "c1", 0, 10.0, model__netG="unet", train__lr_policy="linear", optim__lr="0.0001", size="256"),
        _trial("t2", "c2", 0, 12.0, model__netG="unet", train__lr_policy="step", optim__lr="0.0002", size="256"),
        _trial("t3", "c3", 0, 14.0, model__netG="unet", train__lr_policy="cosine", optim__lr="0.0003", size="256"),
        _trial("t4", "c4", 0, 20.0, model__netG="resnet", train__lr_policy="linear", optim__lr="0.0004",
               size="256", model__n_blocks="6"),
        _trial("t5", "c5", 0, 24.0, model__netG="resnet", train__lr_policy="step", optim__lr="0.0005", size="256",
               model__n_blocks="9"),
        _trial("t6", "c6", 0, 99.0, "failed", model__netG="resnet", train__lr_policy="step", optim__lr="0.01",
               size="256"),
    ]
    return pd.DataFrame(rows)


def test_factor_effects_two_level_factor_diff_ci_and_welch(factor_trials):
    out = factor_effects(factor_trials, "fid", n_boot=2000)
    netg = out[out["factor"] == "factor.model.netG"].set_index("level")
    assert list(netg.index) == ["resnet", "unet"]                    # sorted; the first row holds the test
    unet, resnet = netg.loc["unet"], netg.loc["resnet"]
    assert (unet["n_level"], unet["n_rest"], unet["mean_level"], unet["mean_rest"]) == (3, 2, 12.0, 22.0)
    assert unet["diff"] == -10.0 and resnet["diff"] == 10.0
    # unet: var 4 over 3 trials, resnet: var 8 over 2 -> t = -10 / sqrt(4/3 + 8/2), Welch-Satterthwaite df
    se2 = 4 / 3 + 8 / 2
    t = -10 / math.sqrt(se2)
    df = se2 ** 2 / ((4 / 3) ** 2 / 2 + (8 / 2) ** 2 / 1)
    assert unet["welch_p"] == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert resnet["welch_p"] == unet["welch_p"]
    assert unet["mwu_p"] == pytest.approx(0.2)   # exact: U = 0 is 1 of C(5, 2) = 10 orderings, two-sided
    assert -14.0 <= unet["ci_low"] < -10.0 < unet["ci_high"] <= -6.0
    assert (resnet["ci_low"], resnet["ci_high"]) == (-unet["ci_high"], -unet["ci_low"])
    assert not resnet["mirror"] and unet["mirror"]
    assert unet["p_holm"] > 0.05 and not unet["better"]   # right direction, but not significant after Holm


def test_factor_effects_holm_family_skips_and_conditional_factor(factor_trials):
    out = factor_effects(factor_trials, "fid", n_boot=200)
    assert out["factor"].unique().tolist() == ["factor.model.netG", "factor.train.lr_policy",
                                               "factor.model.n_blocks"]
    assert out.attrs["skipped"].keys() == {"factor.optim.lr"}          # 5 numeric levels -> continuous
    assert "continuous" in out.attrs["skipped"]["factor.optim.lr"]
    pol = out[out["factor"] == "factor.train.lr_policy"].set_index("level")
    assert pol.loc["linear", "mean_level"] == 15.0 and pol.loc["linear", "mean_rest"] == pytest.approx(50 / 3)
    assert math.isnan(pol.loc["cosine", "welch_p"])                     # one trial at that level
    blocks = out[out["factor"] == "factor.model.n_blocks"]
    assert blocks["n_level"].tolist() == [1, 1] and blocks["n_rest"].tolist() == [1, 1]   # unet rows left out
    # Welch family: netG (its mirror excluded), linear, step -> m = 3; cosine and n_blocks have no Welch p
    netg_p = out.loc[(out["factor"] == "factor.model.netG") & ~out["mirror"], "welch_p"].item()
    family = sorted([netg_p, pol.loc["linear", "welch_p"], pol.loc["step", "welch_p"]])
    expected = dict(zip(family, np.minimum(1, np.maximum.accumulate([3 * family[0], 2 * family[1], family[2]]))))
    assert out.loc[out["factor"] == "factor.model.netG", "p_holm"].tolist() == pytest.approx([expected[netg_p]] * 2)
    assert pol.loc["linear", "p_holm"] == pytest.approx(expected[pol.loc["linear", "welch_p"]])
    # MWU family: netG, linear, step, cosine, n_blocks -> m = 5; netG's exact 0.2 is the smallest here
    assert out["mwu_p"].min() == pytest.approx(0.2)
    assert out.loc[out["factor"] == "factor.model.netG", "p_holm_mwu"].tolist() == pytest.approx([1.0, 1.0])
    mwu_family = out.loc[~out["mirror"], "mwu_p"].sort_values().to_numpy()
    assert len(mwu_family) == 5 and mwu_family[0] * 5 >= 1.0


def test_factor_effects_explicit_factors_and_errors(factor_trials):
    out = factor_effects(factor_trials, "fid", factors=["size", "factor.model.netG"], n_boot=100)
    assert out["factor"].unique().tolist() == ["factor.model.netG"]
    assert "1 level" in out.attrs["skipped"]["factor.size"]
    with pytest.raises(ValueError, match="factor.model.netG"):
        factor_effects(factor_trials, "fid", factors=["model.netD"])


def test_factor_effects_better_follows_direction_and_significance():
    low = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95]
    trials = pd.DataFrame([_trial(f"a{i}", f"a{i}", i, v, g="a") for i, v in enumerate(low)]
                          + [_trial(f"b{i}", f"b{i}", i, v + 4, g="b") for i, v in enumerate(low)])
    fid = factor_effects(trials, "fid", n_boot=200).set_index("level")
    assert fid.loc["a", "p_holm"] < 1e-6
    assert fid["better"].to_dict() == {"a": True, "b": False}
    psnr = factor_effects(trials, "psnr", n_boot=200).set_index("level")
    assert psnr["better"].to_dict() == {"a": False, "b": True}


# --- D-overpowering-G detector -------------------------------------------------------------------------------------

def _loss_history(run_id: str, d_real: list[float], d_fake: list[float], g: list[float]) -> pd.DataFrame:
    """Two iterations per epoch at fractional epochs e + 0.25 and e + 0.75, +-0.05 around the epoch's mean."""
    rows, step = [], 0
    for epoch, values in enumerate(zip(d_real, d_fake, g)):
        for offset, jitter in ((0.25, -0.05), (0.75, 0.05)):
            step += 1
            for key, v in zip(("loss.D_real", "loss.D_fake", "loss.G_GAN"), values):
                rows.append({"run_id": run_id, "key": key, "step": step, "epoch": epoch + offset, "value": v + jitter})
    return pd.DataFrame(rows)


_DETECT = {"d_keys": ("D_real", "D_fake"), "g_keys": ("G_GAN",)}


def test_d_overpowering_g_flags_sustained_collapse():
    # D = D_real + D_fake = [1.4, 1.2, 0.3, 0.2, 0.1, 0.1] <= 0.35 from epoch index 2; G >= 1.5 from index 2.
    # D_real alone (0.25 at index 2 > 0.25 * 0.7) would start the stretch later, so the sum matters.
    hist = _loss_history("r", [0.7, 0.6, 0.25, 0.15, 0.05, 0.05], [0.7, 0.6, 0.05, 0.05, 0.05, 0.05],
                         [1.0, 1.2, 1.6, 2.0, 2.5, 3.0])
    other = _loss_history("other", [0.7] * 6, [0.7] * 6, [1.0] * 6)
    result = d_overpowering_g(pd.concat([other, hist]), "r", **_DETECT)
    assert result["flag"] is True and result["began_epoch"] == 3
    assert d_overpowering_g(pd.concat([other, hist]), "other", **_DETECT)["flag"] is False


def test_d_overpowering_g_ignores_healthy_runs_and_brief_dips():
    healthy = _loss_history("h", [0.65, 0.7, 0.6, 0.66, 0.7, 0.64], [0.65] * 6, [1.1, 1.0, 1.2, 1.05, 1.1, 1.0])
    result = d_overpowering_g(healthy, "h", **_DETECT)
    assert result["flag"] is False and result["began_epoch"] is None and "no sustained" in result["reason"]
    dip = _loss_history("d", [0.7, 0.1, 0.1, 0.65, 0.65, 0.65], [0.7, 0.1, 0.1, 0.65, 0.65, 0.65],
                        [1.0, 2.0, 2.0, 1.1, 1.0, 1.0])
    assert d_overpowering_g(dip, "d", **_DETECT)["flag"] is False
    last_only = _loss_history("l", [0.7, 0.65, 0.65, 0.65, 0.65, 0.05], [0.7, 0.65, 0.65, 0.65, 0.65, 0.05],
                              [1.0, 1.0, 1.0, 1.0, 1.0, 3.0])
    assert d_overpowering_g(last_only, "l", **_DETECT)["flag"] is False   # one bad epoch is not sustained


def test_d_overpowering_g_not_applicable_or_insufficient():
    hist = _loss_history("r", [0.7, 0.1, 0.05], [0.7, 0.1, 0.05], [1.0, 3.0, 3.0])
    assert d_overpowering_g(hist, "r", **_DETECT)["began_epoch"] == 2
    wgan = d_overpowering_g(hist, "r", gan_mode="wgangp", **_DETECT)
    assert wgan == {"flag": False, "began_epoch": None,
                    "reason": "not applicable to WGAN-GP (critic losses are unbounded)"}
    short = d_overpowering_g(hist, "r", min_epochs=4, **_DETECT)
    assert short["flag"] is False and "too few epochs" in short["reason"]
    missing = d_overpowering_g(hist, "r", d_keys=("D_real",), g_keys=("G_missing",))
    assert missing["flag"] is False and "loss.G_missing" in missing["reason"]
    none_given = d_overpowering_g(hist, "r", d_keys=(), g_keys=("G_GAN",))   # e.g. an unknown model family
    assert none_given["flag"] is False and "missing" in none_given["reason"]
    with pytest.raises(ValueError, match="lsgan"):
        d_overpowering_g(hist, "r", gan_mode="hinge", **_DETECT)


# --- FID-infinity --------------------------------------------------------------------------------------------------

def test_fid_infinity_recovers_exact_line():
    sizes = [500, 1000, 2000, 5000]
    fit = fid_infinity(sizes, [5 + 300 / n for n in sizes])
    assert isinstance(fit, FidInfinity)
    assert fit.value == pytest.approx(5.0, abs=1e-9) and fit.slope == pytest.approx(300.0, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.n_points == 4 and fit.reason == ""


def test_fid_infinity_needs_three_sizes():
    one = fid_infinity([1000, 1000], [30.0, 31.0])
    assert math.isnan(one.value) and one.reason == "FID logged at 1 sample size; FID-infinity needs >= 3"
    two = fid_infinity([500, 1000, np.nan], [30.0, 31.0, 32.0])
    assert math.isnan(two.value) and two.reason.startswith("FID logged at 2 sample sizes")


def test_fid_sizes_from_history_reads_final_epoch():
    hist = pd.DataFrame([
        {"run_id": "r", "key": "val.fid_n32", "step": 1, "epoch": 1.0, "value": 50.0},
        {"run_id": "r", "key": "val.fid_n64", "step": 1, "epoch": 1.0, "value": 45.0},
        {"run_id": "r", "key": "val.fid_n128", "step": 1, "epoch": 1.0, "value": 44.0},   # not at the final epoch
        {"run_id": "r", "key": "val.fid_n32", "step": 2, "epoch": 2.0, "value": 40.0},
        {"run_id": "r", "key": "val.fid_n64", "step": 2, "epoch": 2.0, "value": 35.0},
        {"run_id": "r", "key": "val.fid", "step": 2, "epoch": 2.0, "value": 1.0},
        {"run_id": "r", "key": "val.fid_nfoo", "step": 2, "epoch": 2.0, "value": 1.0},
        {"run_id": "s", "key": "val.fid_n128", "step": 3, "epoch": 3.0, "value": 1.0},
    ])
    assert fid_sizes_from_history(hist, "r") == {32: 40.0, 64: 35.0}
    assert fid_sizes_from_history(hist, "missing") == {}


# --- equal-budget helpers ------------------------------------------------------------------------------------------

def test_last_common_budget_and_values_at_epoch():
    def rows(run_id: str, epochs: list[int], base: float) -> list[dict]:
        return [{"run_id": run_id, "key": "val.fid", "step": e, "epoch": float(e), "value": base + e} for e in epochs]

    hist = pd.DataFrame(rows("a", [1, 2, 3, 4, 5], 10) + rows("b", [1, 2, 3], 20) + rows("c", [1, 2, 4], 30)
                        + [{"run_id": "c", "key": "val.fid", "step": 3, "epoch": 3.0, "value": np.nan},
                           {"run_id": "d", "key": "val.kid_mean", "step": 9, "epoch": 9.0, "value": 1.0}])
    assert last_common_budget(hist, ["a", "b", "c"], "val.fid") == 2    # {1..5} & {1,2,3} & {1,2,4}
    assert last_common_budget(hist, ["a", "b"], "val.fid") == 3
    assert last_common_budget(hist, ["a", "d"], "val.fid") is None
    at2 = values_at_epoch(hist, "val.fid", 2)
    assert at2.to_dict() == {"a": 12.0, "b": 22.0, "c": 32.0}
    assert values_at_epoch(hist, "val.fid", 5, run_ids=["a", "b"]).to_dict() == {"a": 15.0}


# --- splits, baselines, gain over the strongest prior, Pareto front -------------------------------------------

def test_metric_spec_keys_on_other_splits_and_prefixes():
    assert METRICS["kid"].name == "kid_mean" and METRICS["kid"].key_on("test") == "test.kid_mean"
    assert METRICS["fid"].key_on("prior_tint.test") == "prior_tint.test.fid"
    assert METRICS["delta_e2000"].key_on("raw.val") == "raw.val.delta_e2000"
    assert METRICS["psnr"].better(30.0, 20.0) and METRICS["fid"].better(20.0, 30.0)
    assert not METRICS["fid"].better(float("nan"), 30.0)


def test_add_derived_columns_covers_every_prefix():
    trials = pd.DataFrame({"test.colorfulness": [30.0], "test.colorfulness_real": [40.0],
                           "prior_tint.test.colorfulness": [12.0], "prior_tint.test.colorfulness_real": [40.0],
                           "raw.val.colorfulness": [45.0]})  # no raw.val real column: no gap
    out = add_derived_columns(trials)
    assert out["test.colorfulness_gap"].tolist() == [10.0]
    assert out["prior_tint.test.colorfulness_gap"].tolist() == [28.0]
    assert "raw.val.colorfulness_gap" not in out


def test_rank_configurations_and_factor_effects_on_the_test_split(ranked_trials):
    trials = ranked_trials.assign(**{"test.fid": 100.0 - ranked_trials["val.fid"]})
    val, test = rank_configurations(trials, "fid", n_boot=200), rank_configurations(trials, "fid", n_boot=200,
                                                                                      split="test")
    assert test.attrs["key"] == "test.fid" and test.attrs["split"] == "test"
    assert test["config"].tolist() == val["config"].tolist()[::-1]  # 100 - x reverses the order
    assert rank_configurations(trials, "psnr", split="test").empty   # no test.psnr column: nothing to rank


def _baseline_frame() -> pd.DataFrame:
    return pd.DataFrame({"baseline.test.delta_e2000": [10.0, 10.0], "prior_tint.test.delta_e2000": [9.0, 9.0],
                         "prior_lightness.test.delta_e2000": [8.0, np.nan], "baseline.test.psnr": [18.0, 18.0],
                         "prior_tint.test.psnr": [19.0, 19.0], "prior_lightness.test.psnr": [23.0, 25.0]})


def test_baseline_values_strongest_prior_and_missing_priors():
    frame = _baseline_frame()
    assert baseline_values(frame, "delta_e2000", split="test") == {"gray": 10.0, "tint": 9.0, "lightness": 8.0}
    assert strongest_prior(baseline_values(frame, "delta_e2000", split="test"), "delta_e2000") == ("lightness", 8.0)
    # PSNR is higher-is-better: the larger prior is the strongest; lightness differs between trials (23 vs 25)
    assert strongest_prior(baseline_values(frame, "psnr", split="test"), "psnr") == ("lightness", 24.0)
    assert baselines_differ(frame, "psnr", split="test") == ["lightness"]
    assert baselines_differ(frame, "delta_e2000", split="test") == []
    # older runs: only the gray copy
    old = frame[["baseline.test.delta_e2000"]]
    values = baseline_values(old, "delta_e2000", split="test")
    assert values == {"gray": 10.0, "tint": None, "lightness": None} and strongest_prior(values, "delta_e2000") is None
    assert baseline_values(old, "delta_e2000", split="val") == {"gray": None, "tint": None, "lightness": None}


def test_gain_over_hand_computed():
    # {5.5, 6, 6.5} vs 8, lower is better: (8 - 6) / 8 = 25%. The bootstrap of 3 values: the all-lowest triple has
    # probability 1/27 = 3.7% > 2.5%, so the 95% CI of the mean is [5.5, 6.5] -> [(8 - 6.5) / 8, (8 - 5.5) / 8].
    g = gain_over([5.5, 6.0, 6.5], 8.0, mode="min", n_boot=4000)
    assert (g.mean, g.n, g.diff, g.pct) == (6.0, 3, 2.0, 25.0)
    assert (g.ci_low, g.ci_high) == (pytest.approx(18.75), pytest.approx(31.25)) and g.beats is True
    # higher is better: {22, 24} vs 20 -> (23 - 20) / 20 = 15% better. With 2 values the all-22 resample has
    # probability 1/4, so the CI of the mean is exactly [22, 24]: gain [10, 20]%
    g = gain_over([22.0, 24.0], 20.0, mode="max", n_boot=4000)
    assert g.pct == pytest.approx(15.0) and (g.ci_low, g.ci_high) == (pytest.approx(10.0), pytest.approx(20.0))
    # a CI that reaches 0 does not beat it; nor does a negative gain
    assert gain_over([7.0, 9.0], 8.0, mode="min", n_boot=500).beats is False
    assert gain_over([8.5, 8.5], 8.0, mode="min", n_boot=500).pct == pytest.approx(-6.25)
    # one seed: a gain, but no CI; a zero reference: no relative gain
    one = gain_over([6.0], 8.0, mode="min")
    assert one.pct == 25.0 and math.isnan(one.ci_low) and one.beats is None
    assert math.isnan(gain_over([1.0, 2.0], 0.0, mode="min").pct)
    with pytest.raises(ValueError, match="mode"):
        gain_over([1.0], 1.0, mode="lower")


def test_pareto_front_hand_made_set():
    #            A      B      C      D (dominated by B)  E (= B)  F (NaN)  G (dominated by A on y, ties on x)
    x = [1.0, 2.0, 3.0, 2.5, 2.0, np.nan, 1.0]
    y = [3.0, 2.0, 1.0, 2.5, 2.0, 0.0, 4.0]
    assert pareto_front(x, y).tolist() == [True, True, True, False, True, False, False]
    assert pareto_front([], []).tolist() == []
    with pytest.raises(ValueError, match="length"):
        pareto_front([1.0], [1.0, 2.0])


def test_fid_sizes_from_row_reads_the_test_keys():
    row = {"test.fid_n10": 14.0, "test.fid_n40": 11.0, "test.fid_n20": float("nan"), "test.fid_nx": 1.0,
           "val.fid_n10": 99.0, "test.fid": 10.0}
    assert fid_sizes_from_row(row) == {10: 14.0, 40: 11.0}
