"""Figures and image grids logged with a run: the loss curves and the sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aircolor.utils import atomic_write_bytes


def loss_curve_png(history: dict[str, list[tuple[int, float]]], path: Path, *, adversarial: list[str],
                   discriminator: list[str], title: str = "") -> Path | None:
    """G's adversarial loss beside the D losses, per logged iteration.

    The study reads "G's adversarial loss climbs while D's falls towards 0" as D overpowering G, so the two
    panels share the x axis. Returns None when nothing was logged.
    """
    if not any(history.get(k) for k in adversarial + discriminator):
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for ax, keys, name in ((axes[0], adversarial, "G adversarial"), (axes[1], discriminator, "D")):
        for key in keys:
            points = history.get(key) or []
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=key, linewidth=1.2)
        ax.set_title(f"{name} losses")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def to_u8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) float in [-1, 1] -> uint8 RGB (B, 3, H, W) on the CPU (gray repeated to 3 channels)."""
    out = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return out.expand(-1, 3, -1, -1).contiguous() if out.size(1) == 1 else out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) tensor in [-1, 1] -> (B, H, W, 3) uint8 numpy images, for grids."""
    return to_u8(images).permute(0, 2, 3, 1).numpy()


def grid_png(rows: list[list[np.ndarray]], path: Path, pad: int = 2) -> Path:
    """Write a grid of equally sized uint8 RGB images (one list per row) as PNG."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y:y + h, x:x + w] = img
    import io

    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
