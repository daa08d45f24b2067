"""aircolor.metrics: FID/IS/KID against independent numpy/scipy math, the real-feature cache, paired metrics,
colorfulness, evaluate() and the ``aircolor metrics`` command.

Everything runs on the real sample tiles (256 x 256 aerial photos) and their gray copies, through torch-fidelity's
Inception with a randomly initialised weights file (nothing can be downloaded here), so the metric *values* are
meaningless but the code paths and the math are the real ones. Inception on CPU costs ~0.1-0.3 s per image: each
test extracts as few images as it can, and the features of the shared sets are extracted once per module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from aircolor.config import MetricsConfig
from aircolor.errors import UsageError
from aircolor.metrics import cli as metrics_cli
from aircolor.metrics import evaluation, paired, weights
from aircolor.metrics.cache import RealFeatureCache, RealKey
from aircolor.metrics.features import Features, extract_features
from aircolor.metrics.scores import fid, inception_score, kid

N_SET = 8  # images per shared set: few enough for CPU (three sets give 24 logits for the 10 IS splits)


# --------------------------------------------------------------------------------------------- fixtures
def _tiles(sample_data: Path) -> list[Path]:
    return sorted((sample_data / "color").rglob("*.jpg"))


def _load_rgb(paths: list[Path]) -> torch.Tensor:
    """(N, 3, H, W) uint8 tensor of the images at ``paths``."""
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _load_gray(paths: list[Path]) -> torch.Tensor:
    """(N, 1, H, W) uint8 gray copies (PIL's ITU-R 601 luma), as a colorization model receives them."""
    arrays = [np.asarray(Image.open(p).convert("L")) for p in paths]
    return torch.from_numpy(np.stack(arrays))[:, None].contiguous()


@dataclass
class Sets:
    paths_a: list[Path]
    paths_b: list[Path]
    rgb_a: torch.Tensor
    gray_a: torch.Tensor
    a: Features       # color tiles of set A
    b: Features       # color tiles of set B (another region, disjoint from A)
    gray: Features    # gray copies of set A


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weights.make_random_weights(tmp_path_factory.mktemp("inception") / "random-seed0.pth", seed=0)


@pytest.fixture(scope="module")
def other_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weights.make_random_weights(tmp_path_factory.mktemp("inception") / "random-seed1.pth", seed=1)


@pytest.fixture(scope="module")
def sets(sample_data: Path, weights_file: Path) -> Sets:
    tiles = _tiles(sample_data)
    paths_a, paths_b = tiles[:N_SET], tiles[-N_SET:]
    rgb_a, gray_a = _load_rgb(paths_a), _load_gray(paths_a)
    extract = lambda images: extract_features(images, weights=weights_file, batch_size=5)  # noqa: E731
    return Sets(paths_a, paths_b, rgb_a, gray_a, extract(rgb_a), extract(_load_rgb(paths_b)), extract(gray_a))


# --------------------------------------------------------------------------------------------- weights
def test_random_weights_have_torch_fidelitys_exact_format(weights_file):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = torch.load(weights_file, weights_only=True)
    assert type(state) is dict and len(state) == weights.N_TENSORS == 472
    assert all(t.dtype == torch.float32 for t in state.values())
    # torch-fidelity's own loader takes it (strict load_state_dict), and names/shapes are the module's
    module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(weights_file))
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert torch.equal(module.fc.weight, state["fc.weight"])


def test_random_weights_are_reproducible(tmp_path, weights_file, other_weights_file):
    again = weights.make_random_weights(tmp_path / "again.pth", seed=0)
    assert weights.weights_id(again) == weights.weights_id(weights_file)
    assert weights.weights_id(other_weights_file) != weights.weights_id(weights_file)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_resolve_weights_config_then_env_then_download(monkeypatch, tmp_path, weights_file):
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    assert weights.resolve_weights(None) is None
    assert weights.resolve_weights("") is None
    monkeypatch.setenv(weights.ENV_VAR, str(weights_file))
    assert weights.resolve_weights(None) == weights_file
    assert weights.resolve_weights(str(weights_file)) == weights_file
    with pytest.raises(UsageError, match=r"metrics\.inception_weights.*does not exist"):
        weights.resolve_weights(str(tmp_path / "missing.pth"))
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(UsageError, match=r"\$AIRCOLOR_INCEPTION_WEIGHTS.*does not exist"):
        weights.resolve_weights(None)
    with pytest.raises(UsageError, match="--weights"):
        weights.resolve_weights(str(tmp_path / "missing.pth"), key="--weights")


def test_weights_ids_and_the_standard_flag(monkeypatch, weights_file):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    sha = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert weights.weights_id(weights_file) == sha
    assert weights.weights_id(None) == "standard" and weights.is_standard(None)
    assert not weights.is_standard(weights_file)
    # the pinned digest is the one torch-fidelity's file name abbreviates
    assert URL_INCEPTION_V3.endswith(f"-{weights.STANDARD_SHA256[:8]}.pth")
    monkeypatch.setattr(weights, "STANDARD_SHA256", sha)
    assert weights.is_standard(weights_file)


def test_a_file_that_is_not_inception_weights_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(UsageError, match="not an Inception weights file"):
        extract_features(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), weights=bad)


def test_a_failed_download_of_the_standard_weights_is_a_usage_error(monkeypatch):
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)
    with pytest.raises(UsageError, match=r"cannot download.*AIRCOLOR_INCEPTION_WEIGHTS"):
        extract_features(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), weights=None)


# --------------------------------------------------------------------------------------------- features
def test_features_shapes_and_gray_input(sets, weights_file):
    assert sets.a.pool.shape == (N_SET, 2048) and sets.a.logits.shape == (N_SET, 1008)
    assert sets.a.pool.dtype == np.float64 and sets.a.weights_id == weights.weights_id(weights_file)
    # a 1-channel image is the same as its 3-channel replication; a list of single images is the same as a batch
    replicated = [im.expand(3, -1, -1) for im in sets.gray_a[:2]]
    f = extract_features(replicated, weights=weights_file, batch_size=5)
    np.testing.assert_allclose(f.pool, sets.gray.pool[:2], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        extract_features(sets.rgb_a[:1].float(), weights=weights_file)


# --------------------------------------------------------------------------------------------- metric math
def _fid_scipy(real: np.ndarray, fake: np.ndarray) -> float:
    """FID = |mu_r - mu_g|^2 + Tr S_r + Tr S_g - 2 Tr sqrtm(S_r S_g), with n < 2048 made well-posed.

    With S = A^T A (A the centred features / sqrt(n - 1)), the non-zero eigenvalues of S_r S_g are those of
    M M^T with M = A_r A_g^T (n_r x n_g), so Tr sqrtm(S_r S_g) = Tr sqrtm(M M^T): a small, symmetric PSD sqrtm,
    where scipy's sqrtm of the singular 2048 x 2048 product would take minutes.
    """
    mu_r, mu_g = real.mean(0), fake.mean(0)
    a_r = (real - mu_r) / math.sqrt(len(real) - 1)
    a_g = (fake - mu_g) / math.sqrt(len(fake) - 1)
    m = a_r @ a_g.T
    tr_sqrt = np.trace(scipy.linalg.sqrtm(m @ m.T)).real
    return float(((mu_r - mu_g) ** 2).sum() + (a_r**2).sum() + (a_g**2).sum() - 2 * tr_sqrt)


def test_fid_matches_an_independent_scipy_computation_and_is_zero_for_a_set_with_itself(sets):
    # each FID costs a 2048 x 2048 eigvals (seconds on 2 cores); test_evaluate_gray_to_color checks one more pair
    score = fid(sets.a, sets.b)
    assert score.value == pytest.approx(_fid_scipy(sets.a.pool, sets.b.pool), rel=1e-5)
    assert (score.n_real, score.n_fake, score.weights_id) == (N_SET, N_SET, sets.a.weights_id)
    same = fid(sets.a, sets.a).value
    assert abs(same) < 1e-5 and score.value > 1e4 * max(abs(same), 1e-12)


def _is_numpy(logits: np.ndarray, splits: int, seed: int = 2020) -> tuple[float, float]:
    """exp(E KL(p(y|x) || p(y))) per chunk of the seeded permutation, mean and population std over chunks."""
    n = len(logits)
    x = logits[np.random.RandomState(seed).permutation(n)]
    x = x - x.max(axis=1, keepdims=True)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits:(i + 1) * n // splits]
        p = np.exp(chunk)
        kl = (p * (chunk - np.log(p.mean(axis=0, keepdims=True)))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_numpy_and_never_uses_more_splits_than_images(sets):
    # 24 images, 2-3 per split (with 1 image per split every split's KL is 0 and IS is exactly 1); random weights
    # give nearly the same class distribution for every image, a sharpened copy (x30) exercises the KL more
    logits = np.concatenate([sets.a.logits, sets.b.logits, sets.gray.logits])
    for scale in (1.0, 30.0):
        score = inception_score(logits * scale)
        mean, std = _is_numpy(logits * scale, 10)
        assert score.value == pytest.approx(mean, rel=1e-12) and score.std == pytest.approx(std, rel=1e-6)
        assert score.value > 1.0 + 1e-4 and score.details["splits"] == 10 and score.n_fake == 3 * N_SET
    few = inception_score(logits[:4] * 30.0, splits=10)
    assert few.details["splits"] == 4 and few.n_fake == 4
    assert few.value == pytest.approx(_is_numpy(logits[:4] * 30.0, 4)[0], rel=1e-12)


def _kid_numpy(real: np.ndarray, fake: np.ndarray, m: int, subsets: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 on seeded subsets (fake drawn first, as torch-fidelity)."""
    rng = np.random.RandomState(seed)
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        kxx, kyy, kxy = ((u @ v.T / d + 1.0) ** 3 for u, v in ((x, x), (y, y), (x, y)))
        off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))  # noqa: E731
        values.append(off(kxx) + off(kyy) - 2.0 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def test_kid_matches_an_independent_unbiased_mmd(sets):
    for real, fake in [(sets.a, sets.b), (sets.a, sets.gray)]:
        score = kid(real, fake, subset_size=6, subsets=20, seed=7)
        mean, std = _kid_numpy(real.pool, fake.pool, 6, 20, 7)
        assert score.value == pytest.approx(mean, rel=1e-8) and score.std == pytest.approx(std, rel=1e-6)
        assert score.details == {"subset_size": 6, "subsets": 20}


def test_kid_subset_size_follows_the_data(sets):
    assert kid(sets.a, sets.b, subset_size=1000).details["subset_size"] == N_SET
    small = kid(sets.a.pool[:4], sets.b.pool, subset_size=1000)
    assert small.details["subset_size"] == 4 and (small.n_real, small.n_fake) == (4, N_SET)
    with pytest.raises(ValueError, match="at least 2"):
        kid(sets.a.pool[:1], sets.b.pool)


def test_scores_refuse_features_of_different_weights(sets):
    other = Features(sets.b.pool, sets.b.logits, "0" * 64)
    with pytest.raises(ValueError, match="different Inception weights"):
        fid(sets.a, other)


# --------------------------------------------------------------------------------------------- real-feature cache
def test_real_cache_computes_once_persists_and_rekeys(tmp_path, sets):
    calls = []

    def compute() -> Features:
        calls.append(1)
        return sets.a

    key = RealKey(source="pixels:abc", count=N_SET, size="256x256", weights=sets.a.weights_id)
    cache = RealFeatureCache(tmp_path)
    assert cache.get_or_compute(key, compute)[1] is False and len(calls) == 1
    assert cache.get_or_compute(key, compute)[1] is True and len(calls) == 1
    fresh = RealFeatureCache(tmp_path)  # a new process: served from disk
    got, hit = fresh.get_or_compute(key, compute)
    assert hit and len(calls) == 1 and (fresh.hits, fresh.misses) == (1, 0)
    np.testing.assert_array_equal(got.pool, sets.a.pool)
    assert got.weights_id == sets.a.weights_id
    for changed in (RealKey("pixels:abc", N_SET, "256x256", "f" * 64), RealKey("pixels:abd", N_SET, "256x256",
                                                                               sets.a.weights_id)):
        assert RealFeatureCache(tmp_path).get_or_compute(changed, compute)[1] is False
    assert len(calls) == 3
    cache.path(key).write_bytes(b"not an npz")  # a broken entry is recomputed, not trusted
    assert RealFeatureCache(tmp_path).get_or_compute(key, compute)[1] is False and len(calls) == 4


def test_evaluate_extracts_real_features_once_per_images_and_weights(tmp_path, monkeypatch, sets, weights_file,
                                                                     other_weights_file, sample_data):
    extracted: list[int] = []
    original = evaluation.extract_features

    def counting(images, **kwargs):
        images = list(images)
        extracted.append(len(images))
        return original(images, **kwargs)

    monkeypatch.setattr(evaluation, "extract_features", counting)
    fake, real = sets.gray_a[:2], sets.rgb_a[:2]
    cfg = MetricsConfig(inception_weights=str(weights_file), fid=False, isc=False, paired=False)  # KID: fast

    first = evaluation.evaluate(fake, real, cfg, cache=RealFeatureCache(tmp_path))
    assert extracted == [2, 2] and first.info["real_cache_hit"] is False
    second = evaluation.evaluate(fake, real, cfg, cache=RealFeatureCache(tmp_path))  # fresh instance: from disk
    assert extracted == [2, 2, 2] and second.info["real_cache_hit"] is True
    assert second.metrics == first.metrics

    other = MetricsConfig(inception_weights=str(other_weights_file), fid=False, isc=False, paired=False)
    third = evaluation.evaluate(fake, real, other, cache=RealFeatureCache(tmp_path))
    assert extracted[3:] == [2, 2] and third.info["real_cache_hit"] is False
    assert third.info["weights_sha256"] != first.info["weights_sha256"]

    changed = real.clone()
    changed[1] = _load_rgb([_tiles(sample_data)[N_SET]])[0]
    fourth = evaluation.evaluate(fake, changed, cfg, cache=RealFeatureCache(tmp_path))
    assert extracted[5:] == [2, 2] and fourth.info["real_cache_hit"] is False


# --------------------------------------------------------------------------------------------- paired metrics
@pytest.fixture(scope="module")
def tile_and_gray(sample_data: Path) -> tuple[np.ndarray, np.ndarray]:
    path = _tiles(sample_data)[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    gray = np.asarray(Image.open(path).convert("L").convert("RGB"))
    return rgb, gray


def test_identical_images_have_capped_psnr_ssim_one_delta_e_zero(tile_and_gray):
    rgb, _ = tile_and_gray
    assert paired.psnr(rgb, rgb) == paired.PSNR_CAP_DB == 100.0
    assert paired.ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-12)
    assert paired.delta_e2000(rgb, rgb) == 0.0


def test_psnr_matches_its_formula_and_batches_average(tile_and_gray):
    rgb, gray = tile_and_gray
    mse = np.mean((rgb.astype(np.float64) - gray.astype(np.float64)) ** 2)
    expected = 10 * math.log10(255.0**2 / mse)
    assert paired.psnr(rgb, gray) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < paired.ssim(gray, rgb) < 1.0
    both = paired.paired_metrics([gray, rgb], [rgb, rgb])
    assert both["psnr"] == pytest.approx((expected + 100.0) / 2, rel=1e-12)
    assert both["ssim"] == pytest.approx((paired.ssim(gray, rgb) + 1.0) / 2, rel=1e-12)
    assert both["delta_e2000"] == pytest.approx(paired.delta_e2000(gray, rgb) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="differ in size"):
        paired.psnr(rgb, rgb[:-1])


@pytest.mark.parametrize("lab1, lab2, expected", [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),  # Sharma, Wu & Dalal 2005, test data pair 1
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),  # pair 2
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),  # pair 3
])
def test_delta_e2000_on_sharma_test_data(lab1, lab2, expected):
    got = paired.delta_e2000_lab(np.array([[lab1]]), np.array([[lab2]]))
    assert float(got[0, 0]) == pytest.approx(expected, abs=5e-5)


def test_delta_e2000_black_versus_white_through_the_rgb_path():
    # L* 0 vs 100 with a* = b* = 0: S_L = 1 at mean L* 50, so Delta E 2000 = Delta L* = 100
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert paired.delta_e2000(black, white) == pytest.approx(100.0, abs=1e-3)


def test_colorfulness_hand_computed_cases(tile_and_gray):
    _, gray = tile_and_gray
    assert paired.colorfulness(gray) == 0.0  # R = G = B: rg = yb = 0
    red, blue = (255, 0, 0), (0, 0, 255)
    # 2 x 2 image, two red and two blue pixels: rg = 255, 255, 0, 0 -> mean 127.5, population std 127.5;
    # yb = 127.5, 127.5, -255, -255 -> mean -63.75, std 191.25 = 1.5 * 127.5; mean term sqrt(127.5^2 + 63.75^2)
    two = np.array([[red, blue], [blue, red]], dtype=np.uint8)
    assert paired.colorfulness(two) == pytest.approx(127.5 * (math.sqrt(1 + 1.5**2) + 0.3 * math.sqrt(1 + 0.5**2)))
    # one flat color: no spread, only 0.3 * sqrt(255^2 + 127.5^2)
    assert paired.colorfulness(np.full((3, 3, 3), red, np.uint8)) == pytest.approx(0.3 * 127.5 * math.sqrt(5))
    assert paired.mean_colorfulness([gray, two]) == pytest.approx(paired.colorfulness(two) / 2)


# --------------------------------------------------------------------------------------------- evaluate()
def test_evaluate_gray_to_color(tmp_path, sets, weights_file):
    n = 6
    cfg = MetricsConfig(inception_weights=str(weights_file), kid_subset_size=1000, batch_size=5)
    metrics, info = evaluation.evaluate(sets.gray_a[:n], sets.rgb_a[:n], cfg, cache=tmp_path)
    # 6 images, 5 points spread over 1/N between n/5 (at least 2) and n: N = 2, 3, 4, 6 (rounded, deduplicated)
    assert set(metrics) == {"fid", "is_mean", "is_std", "kid_mean", "kid_std", "psnr", "ssim", "delta_e2000",
                            "colorfulness", "colorfulness_real", "colorfulness_gap", "n_fake", "n_real",
                            "fid_n2", "fid_n3", "fid_n4", "fid_n6"}
    assert metrics["n_fake"] == metrics["n_real"] == n
    real, fake = sets.a.pool[:n], sets.gray.pool[:n]
    assert metrics["fid"] == pytest.approx(_fid_scipy(real, fake), rel=1e-5)
    assert metrics["fid_n6"] == pytest.approx(metrics["fid"], rel=1e-9)  # all 6 images: the same set
    # FID_N: the whole real set against the first N of the generated set in a seeded (2020) permutation
    order = np.random.default_rng(2020).permutation(n)
    assert metrics["fid_n3"] == pytest.approx(_fid_scipy(real, fake[order[:3]]), rel=1e-5)
    assert metrics["kid_mean"] == pytest.approx(_kid_numpy(real, fake, n, 100, 2020)[0], rel=1e-5)
    assert metrics["colorfulness"] == 0.0 and metrics["colorfulness_real"] > 1.0
    assert 0.0 < metrics["ssim"] < 1.0 and metrics["delta_e2000"] > 0.0
    assert info["weights_sha256"] == weights.weights_id(weights_file) and info["nonstandard_weights"] is True
    assert info["is_splits"] == n and info["kid_subset_size"] == n
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())


def test_evaluate_without_ground_truth_and_with_max_images(tmp_path, sets, weights_file):
    cfg = MetricsConfig(inception_weights=str(weights_file), max_images=3)
    metrics, info = evaluation.evaluate(sets.gray_a, None, cfg, cache=tmp_path)
    assert set(metrics) == {"is_mean", "is_std", "colorfulness", "n_fake", "n_real"}
    assert metrics["n_fake"] == 3 and metrics["n_real"] == 0 and info["is_splits"] == 3
    off = MetricsConfig(inception_weights=str(weights_file), fid=False, isc=False, kid=False)
    metrics, _ = evaluation.evaluate(sets.gray_a[:2], sets.rgb_a[:2], off, paired=False, cache=tmp_path)
    assert set(metrics) == {"colorfulness", "colorfulness_real", "colorfulness_gap", "n_fake", "n_real"}  # no Inception at all


# --------------------------------------------------------------------------------------------- CLI
def _run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``aircolor metrics ...`` through register_cli, with aircolor.cli's error handling (UsageError -> 2)."""
    parser = argparse.ArgumentParser(prog="aircolor")
    metrics_cli.register_cli(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["metrics", *argv])
        code = args.func(args)
    except UsageError as exc:
        print(f"aircolor: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cli_dirs(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> dict[str, Path]:
    """real/: 3 color tiles (jpg); gray/: their gray copies as png (same names); other/: 2 different tiles."""
    root = tmp_path_factory.mktemp("cli")
    tiles = _tiles(sample_data)
    dirs = {name: root / name for name in ("real", "gray", "other", "cache")}
    for d in dirs.values():
        d.mkdir()
    for path in tiles[:3]:
        shutil.copy(path, dirs["real"] / path.name)
        Image.open(path).convert("L").save(dirs["gray"] / f"{path.stem}.png")
    for path in tiles[-2:]:
        shutil.copy(path, dirs["other"] / path.name)
    return dirs


def test_cli_json_has_the_metrics_and_the_weights(capsys, monkeypatch, cli_dirs, weights_file):
    monkeypatch.setenv("AIRCOLOR_CACHE_DIR", str(cli_dirs["cache"]))
    code, out, err = _run_cli(capsys, str(cli_dirs["gray"]), str(cli_dirs["real"]), "--weights", str(weights_file),
                              "--json", "--batch-size", "2")
    assert code == 0, err
    data = json.loads(out)
    assert {"fid", "is_mean", "is_std", "kid_mean", "kid_std", "n_fake", "n_real", "weights_sha256",
            "nonstandard_weights", "psnr", "ssim", "delta_e2000"} <= set(data)
    assert data["n_fake"] == data["n_real"] == 3 and data["paired"] is True
    assert data["weights_sha256"] == weights.weights_id(weights_file) and data["nonstandard_weights"] is True
    assert data["colorfulness"] == 0.0 and "non-standard" in err


def test_cli_table_warns_about_non_standard_weights(capsys, monkeypatch, cli_dirs, weights_file):
    monkeypatch.setenv("AIRCOLOR_CACHE_DIR", str(cli_dirs["cache"]))
    monkeypatch.setenv(weights.ENV_VAR, str(weights_file))  # no --weights: the environment variable is used
    code, out, err = _run_cli(capsys, str(cli_dirs["other"]), str(cli_dirs["real"]), "--kid-subset-size", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("fid") and line.endswith("*") for line in lines)
    assert any(line.startswith("WARNING") and "NON-STANDARD" in line for line in lines)
    assert not any(line.startswith("psnr") for line in lines)  # different names: not paired
    assert "paired             no" in out


def test_cli_help_has_an_example(capsys):
    code, out, _ = _run_cli(capsys, "--help")
    assert code == 0 and "example:\n  aircolor metrics " in out


@pytest.mark.parametrize("case", ["missing", "empty", "one-image", "corrupt", "weights", "batch-size"])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, tmp_path, cli_dirs, weights_file, case):
    fake, real, extra = tmp_path / "fake", cli_dirs["real"], ["--weights", str(weights_file)]
    fake.mkdir()
    if case == "missing":
        fake = tmp_path / "nowhere"
    elif case == "one-image":
        shutil.copy(next(cli_dirs["real"].iterdir()), fake / "a.jpg")
    elif case == "corrupt":
        shutil.copy(next(cli_dirs["real"].iterdir()), fake / "a.jpg")
        (fake / "b.jpg").write_bytes(next(cli_dirs["real"].iterdir()).read_bytes()[:600])
    elif case == "weights":
        shutil.copytree(cli_dirs["gray"], fake, dirs_exist_ok=True)
        extra = ["--weights", str(tmp_path / "missing.pth")]
    elif case == "batch-size":
        extra += ["--batch-size", "0"]
    code, out, err = _run_cli(capsys, str(fake), str(real), *extra)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("aircolor: error: ")
    words = {"missing": "no such folder", "empty": "no images", "one-image": "only 1 image", "corrupt": "b.jpg",
             "weights": "--weights", "batch-size": "--batch-size"}
    assert words[case] in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_device_cuda_without_cuda_is_a_usage_error(capsys, cli_dirs, weights_file):
    code, _, err = _run_cli(capsys, str(cli_dirs["gray"]), str(cli_dirs["real"]), "--weights", str(weights_file),
                            "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1


def test_low_rank_fid_equals_torch_fidelitys_eigenvalue_computation():
    """The n x n SVD path (used below 2048 images) gives torch-fidelity's value on the same features."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    from aircolor.metrics.scores import fid

    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 2048))
    fake = rng.normal(loc=0.1, scale=1.2, size=(30, 2048))
    ours = fid(real, fake)
    assert ours.details["method"] == "low-rank svd"
    theirs = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(fake)),
                                      fid_features_to_statistics(torch.from_numpy(real)), verbose=False)
    assert ours.value == pytest.approx(float(theirs[KEY_METRIC_FID]), rel=1e-6)


def test_fid_sample_sizes_span_n_over_5_to_n_or_are_off():
    from aircolor.metrics.scores import fid_sample_sizes

    # evenly spaced in 1/N from 1/(n/5) to 1/n: 1/200 ... 1/1000 -> 200, 250, 333, 500, 1000
    assert fid_sample_sizes(1000, 5) == [200, 250, 333, 500, 1000]
    assert fid_sample_sizes(1000, 0) == [] and fid_sample_sizes(1000, 2) == []  # an extrapolation needs 3 points
    assert fid_sample_sizes(5, 5) == []                                          # too few images


def test_fid_points_off_logs_a_single_fid(tmp_path, sets, weights_file):
    cfg = MetricsConfig(inception_weights=str(weights_file), fid_points=0, isc=False, kid=False)
    metrics, _ = evaluation.evaluate(sets.gray_a[:6], sets.rgb_a[:6], cfg, cache=tmp_path)
    assert "fid" in metrics and not [k for k in metrics if k.startswith("fid_n")]
