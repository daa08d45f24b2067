"""The ``aircolor metrics FAKE_DIR REAL_DIR`` command: the study's metrics for two folders of images.

Same definitions as during training (it calls :func:`aircolor.metrics.evaluation.evaluate`): FID and KID between
the folders, IS of FAKE_DIR only, and PSNR/SSIM/Delta E 2000 when the folders hold the same file names (ignoring
the extension) with the same pixel sizes. Heavy imports happen in the handler, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError

_EPILOG = """\
example:
  aircolor metrics runs/pix2pix/test_fake data/prepared/aligned/test_B --json
  aircolor metrics fake/ real/ --weights ~/models/weights-inception-2015-12-05-6726825d.pth --device cuda

Both folders are searched recursively for images (jpg, png, tif, webp, ...); each needs at least 2. Files
whose names (relative path without extension) and sizes match one to one are treated as (generated, ground
truth) pairs, and PSNR, SSIM and Delta E 2000 are added. Inception weights: --weights, else
$AIRCOLOR_INCEPTION_WEIGHTS, else torch-fidelity downloads the standard ones. Values computed with any other
weights are marked non-standard. Real-image features are cached in $AIRCOLOR_CACHE_DIR/metrics (default
~/.cache/aircolor/metrics), keyed by the images' bytes and the weights' sha256.
"""

_DIGITS = {"fid": ".4f", "is_mean": ".4f", "is_std": ".4f", "kid_mean": ".6f", "kid_std": ".6f", "psnr": ".2f",
           "ssim": ".4f", "delta_e2000": ".3f", "colorfulness": ".2f", "colorfulness_real": ".2f"}
_INCEPTION_KEYS = ("fid", "is_mean", "is_std", "kid_mean", "kid_std")


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``metrics`` to the top-level ``aircolor`` subcommands."""
    from aircolor.config import MetricsConfig

    defaults = MetricsConfig()
    p = subparsers.add_parser(
        "metrics", help="FID, IS, KID (and PSNR/SSIM/Delta E when paired) between two image folders",
        description="Compute the study's metrics between generated images (FAKE_DIR) and real images (REAL_DIR) "
                    "with the same definitions as during training: FID and KID between the folders, IS on "
                    "FAKE_DIR only, and the paired metrics when the folders hold the same file names and sizes.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fake", metavar="FAKE_DIR", help="folder of generated images")
    p.add_argument("real", metavar="REAL_DIR", help="folder of real images (the color ground truth)")
    p.add_argument("--weights", metavar="PATH",
                   help="Inception weights file (default: $AIRCOLOR_INCEPTION_WEIGHTS, else torch-fidelity's download)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, metavar="N",
                   help=f"images per Inception batch (default {defaults.batch_size})")
    p.add_argument("--kid-subset-size", type=int, default=defaults.kid_subset_size, metavar="N",
                   help=f"KID subset size, capped by the image counts (default {defaults.kid_subset_size})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where Inception runs (default cpu)")
    p.set_defaults(func=_cmd_metrics)
    return p


def _check_numbers(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: {args.batch_size} is less than 1; use e.g. --batch-size 32")
    if args.kid_subset_size < 2:
        raise UsageError(f"--kid-subset-size: {args.kid_subset_size} is less than 2; use e.g. --kid-subset-size 1000")


def list_images(folder: Path, label: str) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files skipped), sorted; at least 2 or a UsageError."""
    from aircolor.data.images import IMAGE_SUFFIXES

    if not folder.exists():
        raise UsageError(f"{label} {folder}: no such folder; give a folder of images")
    if not folder.is_dir():
        raise UsageError(f"{label} {folder}: not a folder; give a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if len(files) < 2:
        found = "no images" if not files else "only 1 image"
        raise UsageError(f"{label} {folder}: {found} found (searched recursively for "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))}); FID and KID need at least 2")
    return files


def load_rgb(path: Path) -> Any:
    """Decode ``path`` fully to a (3, H, W) uint8 tensor; an unreadable file is a UsageError naming it."""
    import numpy as np
    import torch

    from aircolor.data.images import Rejected, open_fully

    try:
        im = open_fully(path)
    except Rejected as exc:
        raise UsageError(f"{path}: {exc}; remove or replace the file") from None
    with im:
        rgb = np.asarray(im.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def _stem(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def match_pairs(fake_root: Path, fake_files: list[Path], real_root: Path, real_files: list[Path],
                fakes: list[Any], reals: list[Any]) -> list[int] | None:
    """For each fake, the index of its same-named, same-sized real image; ``None`` if the folders do not pair."""
    fake_names = [_stem(p, fake_root) for p in fake_files]
    real_index = {_stem(p, real_root): i for i, p in enumerate(real_files)}
    if len(set(fake_names)) != len(fake_names) or len(real_index) != len(real_files):
        return None  # a.jpg next to a.png: ambiguous
    if set(fake_names) != set(real_index):
        return None
    order = [real_index[name] for name in fake_names]
    if any(fakes[i].shape != reals[j].shape for i, j in enumerate(order)):
        return None
    return order


def _format(key: str, value: float) -> str:
    return f"{value:{_DIGITS[key]}}" if key in _DIGITS else f"{value:g}"


def format_table(metrics: dict[str, float], info: dict[str, Any], paired: bool) -> str:
    """The metrics as aligned lines; with non-standard weights every Inception value is starred and explained."""
    star = " *" if info["nonstandard_weights"] else ""
    lines = [f"{'metric':<18} value"]
    for key, value in metrics.items():
        lines.append(f"{key:<18} {_format(key, value)}{star if key in _INCEPTION_KEYS else ''}")
    lines.append(f"{'weights':<18} {info['weights_sha256']}")
    lines.append(f"{'paired':<18} {'yes (files matched by name)' if paired else 'no (names or sizes differ)'}")
    if info["nonstandard_weights"]:
        lines.append(f"WARNING: * computed with NON-STANDARD Inception weights (sha256 {info['weights_sha256']}), "
                     f"not the standard inception-2015-12-05 weights: not comparable with published FID/IS/KID values")
    return "\n".join(lines)


def _cmd_metrics(args: argparse.Namespace) -> int:
    from aircolor.config import MetricsConfig
    from aircolor.metrics.evaluation import evaluate
    from aircolor.metrics.weights import resolve_weights

    _check_numbers(args)
    weights = resolve_weights(args.weights, key="--weights")
    fake_root, real_root = Path(args.fake), Path(args.real)
    fake_files, real_files = list_images(fake_root, "FAKE_DIR"), list_images(real_root, "REAL_DIR")
    fakes, reals = [load_rgb(p) for p in fake_files], [load_rgb(p) for p in real_files]
    order = match_pairs(fake_root, fake_files, real_root, real_files, fakes, reals)
    if order is not None:
        reals = [reals[j] for j in order]
    config = MetricsConfig(batch_size=args.batch_size, kid_subset_size=args.kid_subset_size, max_images=None,
                           inception_weights=None if weights is None else str(weights))
    metrics, info = evaluate(fakes, reals, config, paired=order is not None, device=args.device)
    if args.json:
        shown = {k: v for k, v in info.items() if k != "real_cache_hit"}
        print(json.dumps({**metrics, **shown, "paired": order is not None}))
        if info["nonstandard_weights"]:
            print(f"aircolor: warning: computed with non-standard Inception weights (sha256 "
                  f"{info['weights_sha256']}); not comparable with published values", file=sys.stderr)
    else:
        print(format_table(metrics, info, order is not None))
    return 0
