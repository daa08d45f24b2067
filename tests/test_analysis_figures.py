"""Tests for ``analysis.figures``: each figure is written as PNG + SVG, atomically, reproducibly, with its labels.

Run: ``.venv/bin/python -m pytest tests/test_analysis_figures.py -q``
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"
FLAG = "non-standard Inception weights: not comparable with published FID"


def svg_texts(path: Path) -> list[str]:
    """Every <text> element's content (figures keep text as text: svg.fonttype "none")."""
    root = ET.parse(path).getroot()
    return ["".join(node.itertext()) for node in root.iter(f"{SVG_NS}text")]


def assert_written(paths: list[Path], out_dir: Path, stem: str) -> list[str]:
    """Both files exist and are well-formed, no temp file is left; return the SVG's texts."""
    assert paths == [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    assert paths[0].read_bytes()[:8] == PNG_MAGIC
    assert not [p.name for p in out_dir.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    return svg_texts(paths[1])


def make_ranking(n: int, *, n_per: int = 3) -> pd.DataFrame:
    means = 50.0 + 10.0 * np.arange(n)
    return pd.DataFrame({
        "config": [f"cfg{i:02d}" for i in range(n)], "mean": means, "std": 4.0, "n": n_per,
        "ci_low": means - 5 if n_per > 1 else np.nan, "ci_high": means + 5 if n_per > 1 else np.nan,
        "rank": np.arange(1, n + 1), "distinguishable_from_next": [i % 2 == 0 for i in range(n)],
    })


@pytest.fixture(scope="module")
def sweep() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) of a small sweep: 3 configs x 2 seeds, one trial stopped early and one failed."""
    trials, history = [], []
    outcomes = {("a", 1): "stopped early", ("c", 0): "failed"}
    for c_index, config in enumerate("abc"):
        for seed in range(2):
            run_id, outcome = f"{config}{seed}", outcomes.get((config, seed), "completed")
            epochs = 3 if outcome != "completed" else 6
            trials.append({"run_id": run_id, "config": f"cfg_{config}", "seed": seed, "outcome": outcome,
                           "factor.lr": ["1e-4", "1e-3", "1e-2"][c_index],
                           "factor.netG": ["unet", "resnet", "unet"][c_index],
                           "factor.ngf": None if config == "b" else "64",
                           "val.fid": np.nan if outcome == "failed" else 100.0 - 10 * c_index + seed})
            for epoch in range(1, epochs + 1):
                history.append({"run_id": run_id, "key": "val.fid", "step": 10 * epoch, "epoch": float(epoch),
                                "value": 200.0 / epoch + 10 * c_index + seed})
                for key in ("loss.G_GAN", "loss.D_real", "loss.D_fake"):
                    history.append({"run_id": run_id, "key": key, "step": 10 * epoch, "epoch": float(epoch),
                                    "value": 1.0 / epoch + seed})
    return pd.DataFrame(trials), pd.DataFrame(history)


# ---------------------------------------------------------------------------------------------- saving


def test_save_figure_atomic_and_creates_dir(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().set_title("hello figure")
    out = tmp_path / "new" / "dir"
    paths = figures.save_figure(fig, out, "plain")
    assert "hello figure" in assert_written(paths, out, "plain")
    assert sorted(p.name for p in out.iterdir()) == ["plain.png", "plain.svg"]


def test_save_figure_rejects_path_like_stem(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="stem"):
        figures.save_figure(Figure(), tmp_path, "../escape")


def test_save_figure_leaves_no_temp_file_on_failure(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().imshow(np.zeros((2, 2, 3), dtype=np.uint8))
    fig.savefig = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("disk full"))
    with pytest.raises(RuntimeError, match="disk full"):
        figures.save_figure(fig, tmp_path, "broken")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- ranking


@pytest.mark.parametrize(("mean", "baseline", "mode", "expected"), [
    (50.0, 60.0, "min", True), (60.0, 60.0, "min", False), (70.0, 60.0, "min", False),
    (0.9, 0.8, "max", True), (0.8, 0.8, "max", False), (0.7, 0.8, "max", False), (float("nan"), 60.0, "min", False),
])
def test_beats_baseline(mean: float, baseline: float, mode: str, expected: bool) -> None:
    assert figures.beats_baseline(mean, baseline, mode) is expected


def test_beats_baseline_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="min"):
        figures.beats_baseline(1.0, 2.0, "lower")


def test_ranking_chart_labels_baseline_and_flag(tmp_path: Path) -> None:
    ranking = make_ranking(4)  # means 50, 60, 70, 80
    paths = figures.ranking_chart(ranking, metric_label="FID", mode="min", out_dir=tmp_path, stem="rank_fid",
                                  baseline=65.0, flag=FLAG)
    texts = assert_written(paths, tmp_path, "rank_fid")
    joined = "\n".join(texts)
    assert all(f"cfg{i:02d}" in joined for i in range(4))
    assert texts.count("n=3") == 4
    assert figures.BASELINE_LABEL in texts and "gray copy" in joined
    assert FLAG in joined.replace("\n", " ")
    # cfg02 and cfg03 (70, 80) do not beat 65: the legend says so and the hatch pattern is in the SVG.
    assert "does not beat gray copy" in texts
    assert "<pattern" in paths[1].read_text()


def test_ranking_chart_no_hatch_when_all_beat_baseline(tmp_path: Path) -> None:
    paths = figures.ranking_chart(make_ranking(3), metric_label="LPIPS", mode="min", out_dir=tmp_path, stem="r",
                                  baseline=1000.0)
    texts = assert_written(paths, tmp_path, "r")
    assert "does not beat gray copy" not in texts
    assert "<pattern" not in paths[1].read_text()


def test_ranking_chart_max_mode_marks_low_means(tmp_path: Path) -> None:
    paths = figures.ranking_chart(make_ranking(3).iloc[::-1], metric_label="colorfulness", mode="max",
                                  out_dir=tmp_path, stem="r", baseline=65.0)
    assert "does not beat gray copy" in assert_written(paths, tmp_path, "r")


@pytest.mark.parametrize("count", [1, 60])
def test_ranking_chart_scales_from_1_to_60_configs(tmp_path: Path, count: int) -> None:
    ranking = make_ranking(count, n_per=1 if count == 1 else 3)  # n=1: NaN CI, no whiskers
    paths = figures.ranking_chart(ranking, metric_label="FID", mode="min", out_dir=tmp_path, stem="r")
    texts = assert_written(paths, tmp_path, "r")
    assert "1. cfg00" in texts and f"{count}. cfg{count - 1:02d}" in texts
    assert figures.BASELINE_LABEL not in texts


def test_ranking_chart_is_byte_identical_across_calls(tmp_path: Path) -> None:
    kwargs = {"metric_label": "FID", "mode": "min", "baseline": 65.0, "flag": FLAG}
    first = figures.ranking_chart(make_ranking(5), out_dir=tmp_path / "one", stem="r", **kwargs)
    second = figures.ranking_chart(make_ranking(5), out_dir=tmp_path / "two", stem="r", **kwargs)
    assert first[1].read_bytes() == second[1].read_bytes()
    assert first[0].read_bytes() == second[0].read_bytes()


def test_ranking_chart_shows_dollar_literally(tmp_path: Path) -> None:
    ranking = make_ranking(2).assign(config=["cost $5", "cost $6"])
    paths = figures.ranking_chart(ranking, metric_label="FID", mode="min", out_dir=tmp_path, stem="r")
    assert "1. cost $5" in assert_written(paths, tmp_path, "r")


def test_ranking_chart_empty_writes_nothing(tmp_path: Path) -> None:
    assert figures.ranking_chart(make_ranking(0), metric_label="FID", mode="min", out_dir=tmp_path, stem="r") == []
    assert not tmp_path.joinpath("r.png").exists()


def test_ranking_chart_rejects_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        figures.ranking_chart(make_ranking(2), metric_label="FID", mode="best", out_dir=tmp_path, stem="r")


def test_ranking_chart_draws_every_prior_and_marks_bars_behind_the_strongest(tmp_path: Path) -> None:
    # means 50, 60, 70, 80; gray copy 75 (cfg03 loses to it); priors 65 and 55: the strongest is 55 (min), so
    # cfg01 (60) and cfg02 (70) beat the gray copy but not the strongest prior
    paths = figures.ranking_chart(make_ranking(4), metric_label="Delta E", mode="min", out_dir=tmp_path, stem="r",
                                  baseline=75.0, priors={"constant tint": 65.0, "chroma by lightness": 55.0})
    texts = assert_written(paths, tmp_path, "r")
    assert {figures.BASELINE_LABEL, "constant tint", "chroma by lightness"} <= set(texts)
    assert "does not beat gray copy" in texts and "does not beat the strongest prior" in texts
    svg = paths[1].read_text()
    # three reference lines, each in its own style: black dashed, and the two prior styles' colours
    assert svg.count("stroke: #d62728") >= 1 and svg.count("stroke: #9467bd") >= 1  # tab:red, tab:purple
    # every bar that beats the gray copy beats the only logged prior (72) too: only the gray-copy marking
    paths = figures.ranking_chart(make_ranking(4), metric_label="Delta E", mode="min", out_dir=tmp_path, stem="q",
                                  baseline=75.0, priors={"constant tint": 72.0, "chroma by lightness": None})
    texts = assert_written(paths, tmp_path, "q")
    assert "does not beat the strongest prior" not in texts and "chroma by lightness" not in texts


def test_perception_distortion_draws_points_baselines_and_front(tmp_path: Path) -> None:
    points = pd.DataFrame({"config": ["a", "a", "b", "b", "c"], "x": [5.5, 6.5, 8.0, 9.0, 7.0],
                           "y": [5.0, 3.0, 3.0, 1.0, np.nan]})
    baselines = {"gray copy": (10.0, 40.0), "constant tint": (9.0, 30.0), "chroma by lightness": (8.0, 20.0)}
    paths = figures.perception_distortion(points, baselines=baselines, front=["a", "b"], x_label="Delta E 2000",
                                          y_label="colourfulness gap", out_dir=tmp_path, stem="pd", title="PD")
    texts = assert_written(paths, tmp_path, "pd")
    assert {"a", "b", "gray copy", "constant tint", "chroma by lightness", "PD"} <= set(texts)
    assert "c" not in texts  # its only point has no y
    assert "Pareto front (lower-left is better)" in texts and "Delta E 2000" in texts
    empty = points.assign(x=np.nan)
    assert figures.perception_distortion(empty, baselines={}, front=[], x_label="x", y_label="y", out_dir=tmp_path,
                                         stem="none") == []


# -------------------------------------------------------------------------------------------- curves


def test_metric_curves(tmp_path: Path, sweep) -> None:
    trials, history = sweep
    paths = figures.metric_curves(history, trials, key="val.fid", metric_label="FID", out_dir=tmp_path, stem="c",
                                  flag=FLAG)
    texts = assert_written(paths, tmp_path, "c")
    assert {"cfg_a", "cfg_b", "cfg_c"} <= set(texts)
    assert "min-max over seeds" in texts
    assert any("stopped early" in text for text in texts)
    assert FLAG in " ".join(texts)


def test_metric_curves_max_configs_and_order(tmp_path: Path, sweep) -> None:
    trials, history = sweep
    paths = figures.metric_curves(history, trials, key="val.fid", metric_label="FID", out_dir=tmp_path, stem="c",
                                  max_configs=1, configs=["cfg_c", "cfg_a", "cfg_b"])
    texts = assert_written(paths, tmp_path, "c")
    assert "cfg_c" in texts and "cfg_a" not in texts
    assert any("showing 1 of 3" in text for text in texts)


def test_metric_curves_unknown_key_writes_nothing(tmp_path: Path, sweep) -> None:
    trials, history = sweep
    assert figures.metric_curves(history, trials, key="val.nope", metric_label="x", out_dir=tmp_path, stem="c") == []


def test_loss_curves_with_onset(tmp_path: Path, sweep) -> None:
    _, history = sweep
    runs = {"best: unet/seed0": "a0", "worst: resnet/seed1": "b1"}
    paths = figures.loss_curves(history, runs=runs, g_keys=["loss.G_GAN"], d_keys=["loss.D_real", "loss.D_fake"],
                                out_dir=tmp_path, stem="loss",
                                onset={"best: unet/seed0": 3, "worst: resnet/seed1": None})
    texts = assert_written(paths, tmp_path, "loss")
    assert "best: unet/seed0: loss.G_GAN" in texts and "worst: resnet/seed1: loss.D_fake" in texts
    markers = [text for text in texts if "D overpowering G from epoch" in text]
    assert markers == ["best: unet/seed0: D overpowering G from epoch 3"] * 2  # one per panel


# ------------------------------------------------------------------------------------------- effects


def make_effects() -> pd.DataFrame:
    return pd.DataFrame({
        "factor": ["lr", "lr", "lr", "netG", "netG"], "level": ["1e-4", "1e-3", "1e-2", "unet", "resnet"],
        "n_level": [2, 2, 2, 4, 2], "n_rest": [4, 4, 4, 2, 4], "diff": [-3.0, 1.0, 2.0, -2.0, 2.0],
        "ci_low": [-5.0, -1.0, np.nan, -4.0, 0.5], "ci_high": [-1.0, 3.0, np.nan, 0.0, 4.0],
        "p_holm": [0.01, 0.5, np.nan, 0.2, 0.03],
    })


def test_effects_chart_marks_significant_levels(tmp_path: Path) -> None:
    paths = figures.effects_chart(make_effects(), metric_label="FID", out_dir=tmp_path, stem="eff")
    texts = assert_written(paths, tmp_path, "eff")
    assert {"lr", "netG", "1e-4 (n=2 vs 4)", "resnet (n=2 vs 4)"} <= set(texts)
    assert texts.count("*") == 2  # p_holm 0.01 and 0.03


def test_effects_chart_empty_writes_nothing(tmp_path: Path) -> None:
    empty = make_effects().iloc[0:0]
    assert figures.effects_chart(empty, metric_label="FID", out_dir=tmp_path / "eff", stem="eff") == []
    assert not (tmp_path / "eff").exists()


# -------------------------------------------------------------------------------------- parallel coords


@pytest.mark.parametrize("mode", ["min", "max"])
def test_parallel_coordinates(tmp_path: Path, sweep, mode: str) -> None:
    trials, _ = sweep
    paths = figures.parallel_coordinates(trials, factors=["lr", "factor.netG", "ngf"], metric_key="val.fid",
                                         metric_label="FID", mode=mode, out_dir=tmp_path, stem="par")
    texts = assert_written(paths, tmp_path, "par")
    assert {"lr", "netG", "ngf", "FID", "unet", "resnet", "n/a"} <= set(texts)
    assert {"0.0001", "0.001", "0.01"} <= set(texts)  # lr is numeric (spans 2 decades: log scale, even spacing)
    assert "failed / stopped early / no value" in texts


def test_parallel_coordinates_unknown_factor(tmp_path: Path, sweep) -> None:
    trials, _ = sweep
    with pytest.raises(ValueError, match="factor.lr"):
        figures.parallel_coordinates(trials, factors=["nope"], metric_key="val.fid", metric_label="FID", mode="min",
                                     out_dir=tmp_path, stem="par")


def test_numeric_axis_uses_log_scale_past_a_decade() -> None:
    axis = figures._numeric_axis(np.array([1e-4, 1e-3, 1e-2, np.nan]), name="lr", levels=True)
    np.testing.assert_allclose(axis.positions, [0.0, 0.5, 1.0, figures._NA_POS])
    linear = figures._numeric_axis(np.array([2.0, 4.0, 10.0]), name="x", levels=True)
    np.testing.assert_allclose(linear.positions, [0.0, 0.25, 1.0])


# ------------------------------------------------------------------------------------------ image grid


def test_image_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def image(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    rows = [("photo 1", [("gray input", image(16, 16)[..., 0]), ("top-1", image(16, 16)), ("truth", image(16, 16))]),
            ("photo 2", [("gray input", image(24, 12)[..., 0]), ("top-1", image(24, 12))])]
    paths = figures.image_grid(rows, out_dir=tmp_path, stem="grid", title="Samples")
    texts = assert_written(paths, tmp_path, "grid")
    assert {"photo 1", "photo 2", "gray input", "top-1", "truth", "Samples"} <= set(texts)
    assert paths[1].read_text().count("<image") == 5
    again = figures.image_grid(rows, out_dir=tmp_path / "again", stem="grid", title="Samples")
    assert again[1].read_bytes() == paths[1].read_bytes()


def test_image_grid_rejects_float_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        figures.image_grid([("r", [("c", np.zeros((4, 4, 3)))])], out_dir=tmp_path, stem="g")
    assert figures.image_grid([], out_dir=tmp_path, stem="g") == []
