"""What every trial is scored on: the colour priors, the delivered image, the generator's test-time mode,
BicycleGAN's samples, and the rule that the test split never reaches selection."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from aircolor.config import load_config
from aircolor.metrics.priors import fit_priors, fit_priors_cached
from aircolor.models import build_model

SIZE = 32
TINY = ["data.max_images=8", "data.num_workers=0", "model.ngf=8", "model.ndf=8", "model.nef=8",
        "train.device=cpu", "metrics.max_images=8", "metrics.kid_subset_size=4", "metrics.batch_size=8",
        "metrics.fid=false", "metrics.isc=false", "metrics.kid=false", "tracking.enabled=false"]


def _cfg(root: Path, *extra: str, size: int = SIZE):
    return load_config(None, [f"data.root={root}", f"data.size={size}", *TINY, *extra])


# --------------------------------------------------------------------------------------------- priors
def test_priors_by_hand_on_a_tiny_set() -> None:
    """Two 1x2 images: the tint is the median of the four pixels' a*, b*; each L* bin the mean of its pixels."""
    colors = np.array([[[200, 40, 40], [40, 160, 40]], [[40, 40, 200], [210, 50, 45]]], dtype=np.uint8)  # (2,2,3)
    grays = np.array([[200, 60], [30, 205]], dtype=np.uint8)
    color_t = torch.from_numpy(colors).permute(2, 0, 1)[None]          # one image of 2x2 pixels
    gray_t = torch.from_numpy(grays)[None, None]
    priors = fit_priors(gray_t, color_t, n_bins=4)
    lab = rgb2lab(colors)                                              # skimage: independent of our colour code
    L_in = rgb2lab(np.repeat(grays[..., None], 3, axis=-1))[..., 0]    # the gray copies' own L*
    a, b = lab[..., 1].ravel(), lab[..., 2].ravel()
    assert priors.tint == pytest.approx((np.median(a), np.median(b)), abs=0.011)  # histogram median: 0.01 bins
    bins = np.clip((L_in.ravel() / 100 * 4).astype(int), 0, 3)
    for k in range(4):
        members = bins == k
        expect = (a[members].mean(), b[members].mean()) if members.any() else priors.tint
        assert priors.lightness[k] == pytest.approx(expect, abs=0.02), k
        assert priors.counts[k] == members.sum()
    # applied: each pixel gets its bin's mean chroma (tint for every pixel), delivered on the input's own L*
    chroma = priors.chroma("lightness", gray_t)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(chroma.reshape(-1, 2), np.array([priors.lightness[k] for k in bins]), atol=1e-4)
    delivered = priors.deliver("tint", gray_t)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(rgb2lab(delivered)[..., 0], L_in, atol=0.05)


def test_priors_are_fitted_once_per_dataset(tmp_path: Path) -> None:
    gray = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    color = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    calls = []
    first = fit_priors_cached("data:train:8", tmp_path, lambda: calls.append(1) or (gray, color))
    again = fit_priors_cached("data:train:8", tmp_path, lambda: calls.append(1) or (gray, color))
    assert calls == [1] and again == first
    (next(tmp_path.glob("priors-*.json"))).write_text("{broken")
    assert fit_priors_cached("data:train:8", tmp_path, lambda: calls.append(1) or (gray, color)) == first
    assert calls == [1, 1]


# --------------------------------------------------------------------------------------------- delivered image
def test_delivered_metrics_equal_a_hand_recombination(tmp_path: Path, prepared_sample: Path) -> None:
    """val.* scores the input's L* with the model's chroma, gamut-fitted; raw.val.* the generator's own RGB."""
    from aircolor.metrics.paired import paired_metrics
    from aircolor.training.engine import NullTracker
    from aircolor.training.evaluation import Evaluator

    cfg = _cfg(prepared_sample, "model.netG=unet_auto", "model.dropout=false")  # deterministic raw output
    torch.manual_seed(0)
    model = build_model(cfg)
    ev = Evaluator(cfg, torch.device("cpu"), tmp_path)
    out = ev.evaluate(model, 1, NullTracker())
    delivered, raw = ev.outputs(model, ev.val_gray)
    raw_rgb = model.colorize(ev.val_gray).add(1).div(2).permute(0, 2, 3, 1).numpy().astype(np.float64)
    gray = ev.val_gray.add(1).div(2).round(decimals=6).numpy()[:, 0]
    hand_L = rgb2lab(np.repeat(gray[..., None], 3, axis=-1))[..., 0]
    lab = rgb2lab(raw_rgb)
    lab[..., 0] = hand_L
    hand = lab2rgb(lab)  # skimage clips out-of-gamut colours: compare where the recombination is in gamut
    got = delivered.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255
    unclipped = _lab2rgb_unclipped(lab)  # away from the gamut's edge (float32 vs float64 decide differently there)
    in_gamut = ((unclipped > 0.004) & (unclipped < 0.996)).all(axis=-1) & (hand_L > 1)
    assert in_gamut.mean() > 0.3
    assert np.abs(got - hand)[in_gamut].max() <= 1.01 / 255
    # everywhere, in gamut or not, the delivered L* is the input's (chroma shrinks, lightness never moves)
    assert np.abs(rgb2lab(got)[..., 0] - hand_L).max() < 0.7
    hwc = lambda t: [im.permute(1, 2, 0).numpy() for im in t]  # noqa: E731
    assert out["val.delta_e2000"] == pytest.approx(paired_metrics(hwc(delivered), hwc(ev.val_real))["delta_e2000"])
    assert out["raw.val.delta_e2000"] == pytest.approx(paired_metrics(hwc(raw), hwc(ev.val_real))["delta_e2000"])
    assert out["val.delta_e2000"] != out["raw.val.delta_e2000"]


def _lab2rgb_unclipped(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2xyz, xyz2rgb

    with np.errstate(invalid="ignore"):
        return np.nan_to_num(xyz2rgb(lab2xyz(lab)), nan=-1.0)


def test_baselines_are_the_priors_and_the_gray_copy_on_the_same_images(tmp_path: Path, prepared_sample: Path):
    from aircolor.metrics.paired import paired_metrics
    from aircolor.training.engine import NullTracker
    from aircolor.training.evaluation import Evaluator, _gray_u8

    ev = Evaluator(_cfg(prepared_sample), torch.device("cpu"), tmp_path)
    base = ev.baseline(NullTracker())
    hwc = lambda t: [im.permute(1, 2, 0).numpy() for im in t]  # noqa: E731
    gray_u8 = _gray_u8(ev.val_gray)
    for name in ("tint", "lightness"):
        img = ev.priors.deliver(name, gray_u8).mul(255).round().to(torch.uint8)
        assert base[f"prior_{name}.val.delta_e2000"] == pytest.approx(
            paired_metrics(hwc(img), hwc(ev.val_real))["delta_e2000"])
    assert base["prior_lightness.val.delta_e2000"] < base["baseline.val.delta_e2000"]
    assert base["prior_tint.val.colorfulness"] > 0 == pytest.approx(base["baseline.val.colorfulness"], abs=1e-6)
    assert ev.priors.n_images == len(list((prepared_sample / "aligned" / "train").glob("*.png")))


# --------------------------------------------------------------------------------------------- generator mode
def test_batch_norm_unet_outputs_do_not_depend_on_the_rest_of_the_batch(prepared_sample: Path) -> None:
    """pix2pix scored as the reference's test.py (train-mode BN, one image per pass), and the model unchanged."""
    cfg = _cfg(prepared_sample, "model.netG=unet_auto", "model.dropout=false")
    torch.manual_seed(0)
    model = build_model(cfg)
    gray = torch.rand(4, 1, SIZE, SIZE) * 2 - 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    together = model.infer(gray, mode="reference")
    alone = torch.cat([model.infer(gray[i:i + 1], mode="reference") for i in range(4)])
    torch.testing.assert_close(together, alone)
    swapped = model.infer(torch.cat([gray[:1], torch.rand(3, 1, SIZE, SIZE) * 2 - 1]), mode="reference")
    torch.testing.assert_close(swapped[:1], alone[:1])
    for k, v in model.state_dict().items():  # running statistics (and their counters) untouched
        assert torch.equal(v, before[k]), k
    assert not model.training
    # the naive way, a train-mode forward of the whole batch, does mix images: the test above can fail
    model.train()
    with torch.no_grad():
        naive = model.generate(gray)
    model.load_state_dict(before)
    assert (naive - alone).abs().max() > 1e-3
    evald = model.infer(gray, mode="eval")
    torch.testing.assert_close(evald[:1], model.infer(gray[:1], mode="eval"))


def test_reference_mode_keeps_dropout_on_and_seeded_scores_are_repeatable(tmp_path, prepared_64: Path):
    from aircolor.training.evaluation import Evaluator

    cfg = _cfg(prepared_64, "model.netG=unet_auto", size=64)  # 64 px: the U-Net has a dropout block
    torch.manual_seed(0)
    model = build_model(cfg)
    gray = torch.rand(2, 1, 64, 64) * 2 - 1
    assert not torch.equal(model.infer(gray), model.infer(gray))  # dropout is on (the reference's default)
    ev = Evaluator(cfg, torch.device("cpu"), tmp_path)
    state = torch.random.get_rng_state()
    first, again = ev.outputs(model, ev.val_gray)[0], ev.outputs(model, ev.val_gray)[0]
    assert torch.equal(first, again) and torch.equal(torch.random.get_rng_state(), state)


# --------------------------------------------------------------------------------------------- BicycleGAN samples
def test_bicyclegan_scores_k_samples_with_a_diversity(tmp_path: Path, prepared_64: Path) -> None:
    from aircolor.training.engine import NullTracker
    from aircolor.training.evaluation import Evaluator

    for k, want in ((3, True), (1, False)):
        cfg = _cfg(prepared_64, "model.family=bicyclegan", "model.netG=unet_auto", f"metrics.samples={k}",
                   size=64)
        torch.manual_seed(0)
        model = build_model(cfg)
        out = Evaluator(cfg, torch.device("cpu"), tmp_path / str(k)).evaluate(model, 1, NullTracker())
        assert ("val.diversity" in out) is want
        if want:
            assert out["val.diversity"] > 0 and math.isfinite(out["val.delta_e2000"])


# --------------------------------------------------------------------------------------------- selection
def test_the_test_split_never_reaches_selection(tmp_path: Path, prepared_sample: Path) -> None:
    """What Tune's schedulers and searchers see (every ``ctx.report``) has no test.* key, while the run itself
    scores the test split once at its end; every selection metric of the sweeps is a val.* key."""
    from sweeps.state import METRICS
    from aircolor.training.context import RunContext
    from aircolor.training.engine import NullTracker
    from aircolor.training.evaluation import Evaluator
    from aircolor.training.loop import train_loop

    assert all(spec.key.startswith("val.") for spec in METRICS.values())
    cfg = _cfg(prepared_sample, "model.netG=unet_auto", "train.n_epochs=1", "train.n_epochs_decay=1",
               "metrics.eval_every=1", f"train.output_dir={tmp_path}")
    reported: list[dict[str, float]] = []
    logged: list[tuple[int, dict[str, float]]] = []

    class Recorder(NullTracker):
        def log_metrics(self, metrics, step):
            logged.append((step, dict(metrics)))

    ctx = RunContext(report=lambda metrics, ckpt: reported.append(dict(metrics)))
    result = train_loop(cfg, ctx, run_dir=tmp_path / "run", tracker=Recorder(),
                        evaluator=Evaluator(cfg, torch.device("cpu"), tmp_path / "run"))
    assert result.ok and len(reported) == 2
    assert not [k for r in reported for k in r if k.startswith(("test.", "raw.test.")) or ".test." in k]
    test_steps = [step for step, m in logged if any(k.startswith("test.") for k in m)]
    assert test_steps == [2]  # once, at the last epoch
    assert {"test.delta_e2000", "raw.test.delta_e2000", "baseline.test.delta_e2000",
            "prior_tint.test.delta_e2000", "prior_lightness.test.delta_e2000"} <= set(result.test)


def test_promote_selects_on_validation_even_when_test_disagrees(tmp_path: Path) -> None:
    """Two finished trials: A is better on val, B on test. Promotion must pick A."""
    from mlflow import MlflowClient

    from sweeps.promote import promote

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("sel", artifact_location=str(tmp_path / "artifacts"))
    generator = tmp_path / "generator.pt"
    generator.write_bytes(b"weights")
    for trial, val, test in (("A", 5.0, 9.0), ("B", 7.0, 3.0)):
        run = client.create_run(exp, run_name=trial, tags={"trial_name": trial})
        client.log_metric(run.info.run_id, "val.delta_e2000", val, step=2)
        client.log_metric(run.info.run_id, "test.delta_e2000", test, step=2)
        client.log_artifact(run.info.run_id, str(generator), "model")
        client.set_terminated(run.info.run_id, "FINISHED")
    chosen = promote("sel", tracking_uri=uri, experiment="sel", metric="delta_e2000")
    assert chosen.trial == "A" and chosen.metric_key == "val.delta_e2000" and chosen.value == 5.0
