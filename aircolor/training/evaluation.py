"""Evaluation during training: the study's metrics on the image users get, against the baselines it must beat.

Every score is of the **delivered** image, what ``aircolor colorize`` writes: the input's own L* with the model's
chroma, gamut-fitted (:func:`aircolor.colorize.engine.deliver`). The generator runs in ``metrics.generator_mode``
(default ``reference``: as the references' test.py, see :mod:`aircolor.models.inference`), from a seeded RNG of its
own, so dropout is the same at every evaluation and the training RNG is untouched.

* Every ``metrics.eval_every`` epochs, the validation tiles (the selection split): FID / IS / KID against the real
  tiles, PSNR / SSIM / Delta E 2000 and colourfulness, as ``val.<metric>``; the generator's raw output's paired
  metrics and colourfulness as ``raw.val.<metric>`` (no Inception: it would double the evaluation's cost);
  CycleGAN also ``val.fid_BA`` / ``val.fid_mean``; BicycleGAN scores ``metrics.samples`` z ~ N(0, I) per input:
  paired metrics are the mean over samples, ``val.diversity`` the mean pairwise a*b* distance between samples,
  FID / IS / KID the first sample's. The real historical photos: FID / KID against the training split's colour
  tiles, IS and colourfulness, as ``hist.<metric>``.
* Before training, the baselines on the same validation images (step 0): the gray copy ``baseline.val.*``, the
  constant-tint prior ``prior_tint.val.*`` and the chroma-by-lightness prior ``prior_lightness.val.*``
  (:mod:`aircolor.metrics.priors`, fitted on the training split once per dataset).
* When a run has trained its whole budget, the test split once: ``test.*``, ``raw.test.*`` and the same three
  baselines (``baseline.test.*``, ``prior_*.test.*``). Nothing selects on it: it is read only then, and never
  reported to Tune.

Images are resized to ``data.size`` and are the same at every evaluation, so curves are comparable. The number
of images behind every FID is logged with it (``*.n_fake``, ``*.n_real``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from aircolor.colorize.delivery import deliver, seeded, to_chroma
from aircolor.config import RunConfig
from aircolor.data.colorspace import AB_SCALE, rgb_to_lab
from aircolor.data.datasets import AlignedDataset, SingleDataset, list_images
from aircolor.metrics.priors import PRIORS, ColorPriors, fit_priors_cached
from aircolor.training.plots import grid_png, to_u8 as _u8, to_uint8

BASELINES = {"gray": "baseline", **{name: f"prior_{name}" for name in PRIORS}}  # name -> metric prefix


def _stack(dataset: Any, key: str) -> torch.Tensor:
    return torch.stack([dataset[i][key] for i in range(len(dataset))])


def _gray_u8(gray: torch.Tensor) -> torch.Tensor:
    """Gray in [-1, 1] -> uint8, 1 channel."""
    return gray.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def _float_u8(rgb01: torch.Tensor) -> torch.Tensor:
    return rgb01.mul(255).round().clamp(0, 255).to(torch.uint8)


@dataclasses.dataclass
class EvalSet:
    """A fixed image set of the dataset: gray inputs in [-1, 1] (N, 1, H, W), uint8 ground truth, names."""

    split: str
    gray: torch.Tensor
    real: torch.Tensor
    names: list[str]

    @classmethod
    def load(cls, root: Path, split: str, common: dict[str, Any]) -> "EvalSet":
        ds = AlignedDataset(root, split, **common)
        return cls(split, _stack(ds, "A"), _u8(_stack(ds, "B")), [Path(p).stem for p in ds.paths])


class Evaluator:
    def __init__(self, cfg: RunConfig, device: torch.device, run_dir: Path) -> None:
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        self.root, size = Path(cfg.data.root), cfg.data.size
        self.common = dict(color_space="rgb", size=size, preprocess="resize", train=False, cache=False,
                           max_images=cfg.metrics.max_images)
        self.val = EvalSet.load(self.root, "val", self.common)
        self.val_gray, self.val_real = self.val.gray, self.val.real   # kept: tests and benchmarks read them
        manifest = self.root / "manifest.parquet"
        self.data_key = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.is_file() else None
        self.priors = self._fit_priors()
        self._train_real: torch.Tensor | None = None
        hist_dir = self.root / "historical"
        self.hist_gray = None
        if hist_dir.is_dir() and list_images(hist_dir):
            self.hist_gray = _stack(SingleDataset(hist_dir, **self.common), "A")
        self.tagged = False
        self.info: dict[str, Any] = {}   # weights sha256 and the non-standard flag of the last evaluation

    # ------------------------------------------------------------------ fixed sets
    @property
    def train_real(self) -> torch.Tensor:
        """The training split's colour tiles (at most ``metrics.max_images``): the historical photos' real set,
        read on first use (runs without historical photos or FID never read them)."""
        if self._train_real is None:
            ds = AlignedDataset(self.root, "train", **self.common)
            self._train_real = _u8(_stack(ds, "B"))
        return self._train_real

    def _fit_priors(self) -> ColorPriors:
        from aircolor.metrics.evaluation import _cache

        def load() -> tuple[torch.Tensor, torch.Tensor]:
            ds = AlignedDataset(self.root, "train", **dict(self.common, max_images=None))
            return _gray_u8(_stack(ds, "A")), _u8(_stack(ds, "B"))

        key = f"{self.data_key}:train:{self.cfg.data.size}:priors" if self.data_key else None
        return fit_priors_cached(key, _cache(None).root / "priors", load)

    def _test_set(self) -> EvalSet | None:
        test_dir = self.root / "aligned" / "test"
        return EvalSet.load(self.root, "test", self.common) if test_dir.is_dir() and list_images(test_dir) else None

    def _key(self, split: str) -> str | None:
        """The feature-cache key of a fixed image set of this dataset (``val``, ``test``, ``val-gray``, ...)."""
        return f"{self.data_key}:{split}:{self.cfg.data.size}" if self.data_key else None

    # ------------------------------------------------------------------ scoring
    def _metrics(self, fake: torch.Tensor, real: torch.Tensor | None, split: str, *, paired: bool = True,
                 only_fid: bool = False, inception: bool = True,
                 fake_split: str | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        from aircolor.metrics import evaluate

        mcfg = self.cfg.metrics
        if only_fid:
            mcfg = dataclasses.replace(mcfg, isc=False, kid=False, paired=False, fid_points=0)
        if not inception:
            mcfg = dataclasses.replace(mcfg, fid=False, isc=False, kid=False, fid_points=0)
        result = evaluate(fake, real, mcfg, real_key=self._key(split), paired=paired, device=self.device,
                          fake_key=self._key(fake_split) if fake_split else None)
        return result.metrics, result.info

    def _tag(self, tracker: Any, info: dict[str, Any]) -> None:
        self.info = {"weights_sha256": info.get("weights_sha256"),
                     "nonstandard_weights": bool(info.get("nonstandard_weights"))}
        if self.tagged:
            return
        tracker.set_tags({"inception.weights_sha256": str(info.get("weights_sha256", "")),
                          "nonstandard_weights": str(bool(info.get("nonstandard_weights"))).lower()})
        self.tagged = True

    @torch.no_grad()
    def outputs(self, model: Any, gray: torch.Tensor,
                z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(delivered, raw) uint8 RGB of ``gray`` (N, 1, H, W) in [-1, 1]: one generator pass per image."""
        bs, mode = self.cfg.metrics.batch_size, self.cfg.metrics.generator_mode
        delivered, raw = [], []
        with seeded(self.device):
            for i in range(0, len(gray), bs):
                g = gray[i:i + bs].to(self.device)
                out = model.infer(g, mode=mode, batch_size=bs, z=None if z is None else z[i:i + bs])
                ab = to_chroma(model.color_space, out) * AB_SCALE
                delivered.append(_float_u8(deliver((g.float() + 1) / 2, ab)).cpu())
                raw.append(_u8(model.to_rgb(g, out)).cpu())
        return torch.cat(delivered), torch.cat(raw)

    def _samples(self, model: Any, n: int) -> list[torch.Tensor | None]:
        """The latent codes to score: None (the model has none), or ``metrics.samples`` seeded draws of N(0, I)."""
        nz = getattr(model, "nz", None)
        if nz is None:
            return [None]
        gen = torch.Generator().manual_seed(1234)
        return [torch.randn(n, nz, generator=gen) for _ in range(self.cfg.metrics.samples)]

    def score(self, model: Any, data: EvalSet,
              prefix: str) -> tuple[dict[str, float], torch.Tensor, dict[str, Any]]:
        """``<prefix>.*`` (delivered) and ``raw.<prefix>.*`` metrics of ``model`` on ``data``, the delivered images of
        the first sample, and the metrics' provenance (weights). With several z samples the paired metrics and colourfulness are their means."""
        runs = []
        for k, z in enumerate(self._samples(model, len(data.gray))):
            delivered, raw = self.outputs(model, data.gray, z)
            metrics, info = self._metrics(delivered, data.real, data.split, inception=k == 0)
            raw_metrics, _ = self._metrics(raw, data.real, data.split, inception=False)
            runs.append((delivered, metrics, raw_metrics, info))
        first, info = runs[0][0], runs[0][3]
        out = {f"{prefix}.{k}": v for k, v in _mean_over(r[1] for r in runs).items()}
        out.update({f"raw.{prefix}.{k}": v for k, v in _mean_over(r[2] for r in runs).items()})
        if len(runs) > 1:
            out[f"{prefix}.diversity"] = diversity([r[0] for r in runs])
        return out, first, info

    def baseline_images(self, gray: torch.Tensor) -> dict[str, torch.Tensor]:
        """The delivered uint8 RGB images of every baseline (``gray``, ``tint``, ``lightness``) for gray inputs in
        [-1, 1] (N, 1, H, W)."""
        gray_u8 = _gray_u8(gray)
        return {"gray": _u8(gray), **{name: _float_u8(self.priors.deliver(name, gray_u8)) for name in PRIORS}}

    def _baselines(self, data: EvalSet) -> tuple[dict[str, float], dict[str, Any]]:
        """The gray copy and both priors scored on ``data`` (Inception features cached per fixed set), and how."""
        out: dict[str, float] = {}
        info: dict[str, Any] = {}
        for name, fake in self.baseline_images(data.gray).items():
            metrics, info = self._metrics(fake, data.real, data.split, fake_split=f"{data.split}-{name}")
            out.update({f"{BASELINES[name]}.{data.split}.{k}": v for k, v in metrics.items()})
        return out, info

    # ------------------------------------------------------------------ public
    def warm_real_statistics(self) -> dict[str, bool]:
        """Put the Inception features of every fixed set the validation evaluations use (the real sets they compare
        against, and the gray copies and priors the baselines score) into the feature cache, under the keys the
        evaluations use; ``{split: was already cached}``. A sweep driver calls this once before its trials start,
        so that none of them pays for them (with ``$AIRCOLOR_CACHE_DIR`` on storage every node shares, on a
        multi-node cluster). The test split is not read here: it is read by each trial at its end only."""
        from aircolor.metrics.evaluation import _cache, _images, real_features
        from aircolor.metrics.weights import resolve_weights

        m = self.cfg.metrics
        if not (m.fid or m.kid or m.isc) or self.data_key is None:
            return {}
        weights = resolve_weights(m.inception_weights)
        sets = {"val": self.val_real} if m.fid or m.kid else {}
        if (m.fid or m.kid) and self.hist_gray is not None:
            sets["train"] = self.train_real
        # the baselines' images (the gray copies are also CycleGAN's B->A real set)
        sets.update({f"val-{name}": images for name, images in self.baseline_images(self.val_gray).items()})
        out = {}
        for split, real in sets.items():
            _, out[split] = real_features(_images(real, m.max_images), weights=weights, real_key=self._key(split),
                                          cache=_cache(None), device=self.device, batch_size=m.batch_size)
        return out

    def baseline(self, tracker: Any) -> dict[str, float]:
        """The baselines on the validation images, logged once at step 0: ``baseline.val.*`` (gray copy),
        ``prior_tint.val.*`` and ``prior_lightness.val.*``. After :meth:`warm_real_statistics` no trial of a sweep
        runs Inception for them."""
        out, info = self._baselines(self.val)
        self._tag(tracker, info)
        tracker.log_metrics(out, step=0)
        tracker.log_dict(self.priors_record(), "priors.json")
        return out

    def priors_record(self) -> dict[str, Any]:
        return {"tint_ab": list(self.priors.tint), "lightness_ab": [list(r) for r in self.priors.lightness],
                "pixels_per_bin": list(self.priors.counts), "train_images": self.priors.n_images}

    def evaluate(self, model: Any, epoch: int, tracker: Any) -> dict[str, float]:
        out, fake_u8, info = self.score(model, self.val, "val")
        self._tag(tracker, info)
        if hasattr(model, "decolorize") and self.cfg.metrics.fid:
            with seeded(self.device):
                gray_fake = model.decolorize(self.val_real.float().div(127.5).sub(1).to(self.device))
            ba, _ = self._metrics(_u8(gray_fake), _u8(self.val_gray), "val-gray", only_fid=True)
            out["val.fid_BA"] = ba["fid"]
            out["val.fid_mean"] = 0.5 * (out["val.fid"] + ba["fid"])
        grids = [self._grid(self.val, fake_u8, epoch, "val")]
        if self.hist_gray is not None:
            hist, _ = self.outputs(model, self.hist_gray, None if getattr(model, "nz", None) is None
                                   else torch.zeros(len(self.hist_gray), model.nz))
            hmetrics, _ = self._metrics(hist, self.train_real, "train", paired=False)
            out.update({f"hist.{k}": v for k, v in hmetrics.items()})
            grids.append(self._hist_grid(hist, epoch))
        tracker.log_metrics(out, step=epoch)
        for key, grid in zip(("samples/val", "samples/historical"), grids):
            if grid is not None:
                tracker.log_artifact(grid, "samples")
                self._log_image(tracker, grid, key, epoch)
        return out

    def evaluate_test(self, model: Any, epoch: int, tracker: Any) -> dict[str, float]:
        """The test split, once, when the run has trained its whole budget: ``test.*``, ``raw.test.*`` and the
        baselines on it, logged at ``epoch``. Returns {} when the dataset has no test split."""
        data = self._test_set() if self.cfg.metrics.test_at_end else None
        if data is None:
            return {}
        out, fake_u8, _ = self.score(model, data, "test")
        out.update(self._baselines(data)[0])
        tracker.log_metrics(out, step=epoch)
        grid = self._grid(data, fake_u8, epoch, "test")
        if grid is not None:
            tracker.log_artifact(grid, "samples")
        return out

    # ------------------------------------------------------------------ images
    def _log_image(self, tracker: Any, png: Path, key: str, step: int) -> None:
        """The grid as an MLflow step image (what ``MlflowClient.log_image(key=, step=)`` writes), so the UI's image
        panel shows the samples epoch by epoch. Written through the tracker, so an outage loses nothing."""
        import time
        import uuid

        from PIL import Image

        stem = f"{key.replace('/', '~')}+step+{step}+timestamp+{int(time.time() * 1000)}+{uuid.uuid4()}"
        folder = self.run_dir / "mlflow-images"
        folder.mkdir(parents=True, exist_ok=True)
        full, small = folder / f"{stem}.png", folder / f"{stem}+compressed.webp"
        with Image.open(png) as im:
            im.save(full)
            im.thumbnail((512, 512))
            im.save(small)
        tracker.log_artifact(full, "images")
        tracker.log_artifact(small, "images")
        tracker.set_tags({"mlflow.loggedImages": "True"})

    def _grid(self, data: EvalSet, fake_u8: torch.Tensor, epoch: int, split: str) -> Path | None:
        """Rows of gray | delivered | ground truth."""
        n = min(self.cfg.tracking.sample_images, len(fake_u8))
        if n == 0:
            return None
        rows = [[to_uint8(data.gray[i:i + 1])[0], fake_u8[i].permute(1, 2, 0).numpy(),
                 data.real[i].permute(1, 2, 0).numpy()] for i in range(n)]
        return grid_png(rows, self.run_dir / "samples" / f"{split}_epoch_{epoch:04d}.png")

    def _hist_grid(self, hist_u8: torch.Tensor, epoch: int) -> Path | None:
        n = min(self.cfg.tracking.sample_images, len(hist_u8))
        if n == 0:
            return None
        rows = [[to_uint8(self.hist_gray[i:i + 1])[0], hist_u8[i].permute(1, 2, 0).numpy()] for i in range(n)]
        return grid_png(rows, self.run_dir / "samples" / f"historical_epoch_{epoch:04d}.png")


def _mean_over(runs: Any) -> dict[str, float]:
    """Key-wise mean of metric dicts (keys of the first; a key missing from a later dict is averaged without it)."""
    runs = list(runs)
    keys = runs[0].keys()
    return {k: float(sum(r[k] for r in runs if k in r) / sum(1 for r in runs if k in r)) for k in keys}


def diversity(samples: list[torch.Tensor]) -> float:
    """Mean pairwise a*b* distance (Lab units, per pixel, then over images) between the delivered uint8 RGB images
    of several z samples of the same inputs: 0 when every sample is the same colorization."""
    abs_ = [rgb_to_lab(s.float() / 255.0)[:, 1:] for s in samples]
    pairs = [(i, j) for i in range(len(abs_)) for j in range(i + 1, len(abs_))]
    if not pairs:
        return 0.0
    return float(sum((abs_[i] - abs_[j]).norm(dim=1).mean() for i, j in pairs) / len(pairs))
