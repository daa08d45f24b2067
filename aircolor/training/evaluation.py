"""Evaluation during training: the study's metrics on fixed images, sample grids, and the gray-copy baseline.

Every ``metrics.eval_every`` epochs the model colorizes

* the validation tiles (gray copy in, ground truth known): FID / IS / KID against the real tiles and the paired
  metrics PSNR / SSIM / Delta E 2000, plus colorfulness; logged as ``val.<metric>``;
* for CycleGAN also the B -> A direction (G_B's gray versions of the real color tiles against the real gray
  copies): ``val.fid_BA``, and ``val.fid_mean``, the average of the two FIDs as in the study;
* the real historical photos (no ground truth): FID / KID against the modern color test tiles, IS and
  colorfulness; logged as ``hist.<metric>``.

Before training, the same metrics of the gray copy itself (the input returned unchanged as RGB) are logged as
``baseline.val.<metric>``: a model that does not beat doing nothing has learnt nothing useful. The number of
images behind every FID is logged with it (``val.n_fake``, ``val.n_real``). All images are resized to
``data.size``; they are the same at every evaluation, so curves are comparable.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from aircolor.config import RunConfig
from aircolor.data.datasets import AlignedDataset, SingleDataset, list_images
from aircolor.training.plots import grid_png, to_u8 as _u8, to_uint8


def _stack(dataset: Any, key: str) -> torch.Tensor:
    return torch.stack([dataset[i][key] for i in range(len(dataset))])


class Evaluator:
    def __init__(self, cfg: RunConfig, device: torch.device, run_dir: Path) -> None:
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        root, size, limit = Path(cfg.data.root), cfg.data.size, cfg.metrics.max_images
        common = dict(color_space="rgb", size=size, preprocess="resize", train=False, cache=False, max_images=limit)
        val = AlignedDataset(root, "val", **common)
        self.val_gray, self.val_real = _stack(val, "A"), _u8(_stack(val, "B"))
        self.val_names = [Path(p).stem for p in val.paths]
        test_dir = root / "aligned" / "test"
        test = AlignedDataset(root, "test", **common) if test_dir.is_dir() and list_images(test_dir) else val
        self.test_real = _u8(_stack(test, "B"))
        hist_dir = root / "historical"
        self.hist_gray = None
        if hist_dir.is_dir() and list_images(hist_dir):
            self.hist_gray = _stack(SingleDataset(hist_dir, **common), "A")
        manifest = root / "manifest.parquet"
        self.data_key = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.is_file() else None
        self.tagged = False
        self.info: dict[str, Any] = {}   # weights sha256 and the non-standard flag of the last evaluation

    # ------------------------------------------------------------------ helpers
    def _key(self, split: str) -> str | None:
        """The feature-cache key of a fixed image set of this dataset (``val``, ``test``, ``val-gray``)."""
        return f"{self.data_key}:{split}:{self.cfg.data.size}" if self.data_key else None

    def _metrics(self, fake: torch.Tensor, real: torch.Tensor | None, split: str, *, paired: bool = True,
                 only_fid: bool = False, fake_split: str | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        from aircolor.metrics import evaluate

        mcfg = self.cfg.metrics
        if only_fid:
            mcfg = dataclasses.replace(mcfg, isc=False, kid=False, paired=False, fid_points=0)
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
    def _colorize(self, model: Any, gray: torch.Tensor) -> torch.Tensor:
        bs = self.cfg.metrics.batch_size
        return torch.cat([model.colorize(gray[i:i + bs].to(self.device)).cpu() for i in range(0, len(gray), bs)])

    # ------------------------------------------------------------------ public
    def warm_real_statistics(self) -> dict[str, bool]:
        """Put the Inception features of every fixed set this run uses (the real sets it compares against, and the
        gray copies its baseline scores) into the feature cache, under the keys the evaluations use;
        ``{split: was already cached}``. A sweep driver calls this once before its
        trials start, so that none of them pays for the real statistics (with ``$AIRCOLOR_CACHE_DIR`` on storage
        every node shares, on a multi-node cluster)."""
        from aircolor.metrics.evaluation import _cache, _images, real_features
        from aircolor.metrics.weights import resolve_weights

        m = self.cfg.metrics
        if not (m.fid or m.kid or m.isc) or self.data_key is None:
            return {}
        weights = resolve_weights(m.inception_weights)
        sets = {"val": self.val_real, "test": self.test_real} if m.fid or m.kid else {}
        sets["val-gray"] = _u8(self.val_gray)  # the gray-copy baseline's images (and CycleGAN's B->A real set)
        out = {}
        for split, real in sets.items():
            _, out[split] = real_features(_images(real, m.max_images), weights=weights, real_key=self._key(split),
                                          cache=_cache(None), device=self.device, batch_size=m.batch_size)
        return out

    def baseline(self, tracker: Any) -> dict[str, float]:
        """Metrics of the gray copy returned unchanged as RGB, logged once as ``baseline.val.*`` at step 0. Its
        Inception features are a fixed set of the dataset, cached like the real ones (``val-gray``): after
        :meth:`warm_real_statistics`, no trial of a sweep runs Inception for its baseline."""
        metrics, info = self._metrics(_u8(self.val_gray), self.val_real, "val", fake_split="val-gray")
        self._tag(tracker, info)
        out = {f"baseline.val.{k}": v for k, v in metrics.items()}
        tracker.log_metrics(out, step=0)
        return out

    def evaluate(self, model: Any, epoch: int, tracker: Any) -> dict[str, float]:
        fake = self._colorize(model, self.val_gray)
        fake_u8 = _u8(fake)
        metrics, info = self._metrics(fake_u8, self.val_real, "val")
        self._tag(tracker, info)
        out = {f"val.{k}": v for k, v in metrics.items()}
        if hasattr(model, "decolorize") and self.cfg.metrics.fid:
            gray_fake = model.decolorize(self.val_real.float().div(127.5).sub(1).to(self.device))
            ba, _ = self._metrics(_u8(gray_fake), _u8(self.val_gray), "val-gray", only_fid=True)
            out["val.fid_BA"] = ba["fid"]
            out["val.fid_mean"] = 0.5 * (out["val.fid"] + ba["fid"])
        grids = [self._grid(fake_u8, epoch)]
        if self.hist_gray is not None:
            hist = _u8(self._colorize(model, self.hist_gray))
            hmetrics, _ = self._metrics(hist, self.test_real, "test", paired=False)
            out.update({f"hist.{k}": v for k, v in hmetrics.items()})
            grids.append(self._hist_grid(hist, epoch))
        tracker.log_metrics(out, step=epoch)
        for key, grid in zip(("samples/val", "samples/historical"), grids):
            if grid is not None:
                tracker.log_artifact(grid, "samples")
                self._log_image(tracker, grid, key, epoch)
        return out

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

    def _grid(self, fake_u8: torch.Tensor, epoch: int) -> Path | None:
        n = min(self.cfg.tracking.sample_images, len(fake_u8))
        if n == 0:
            return None
        rows = [[to_uint8(self.val_gray[i:i + 1])[0], fake_u8[i].permute(1, 2, 0).numpy(),
                 self.val_real[i].permute(1, 2, 0).numpy()] for i in range(n)]
        return grid_png(rows, self.run_dir / "samples" / f"val_epoch_{epoch:04d}.png")

    def _hist_grid(self, hist_u8: torch.Tensor, epoch: int) -> Path | None:
        n = min(self.cfg.tracking.sample_images, len(hist_u8))
        if n == 0:
            return None
        rows = [[to_uint8(self.hist_gray[i:i + 1])[0], hist_u8[i].permute(1, 2, 0).numpy()] for i in range(n)]
        return grid_png(rows, self.run_dir / "samples" / f"historical_epoch_{epoch:04d}.png")
