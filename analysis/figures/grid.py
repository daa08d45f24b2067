"""The image grid: photos in rows, the gray input, each configuration's colorization and the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from analysis.figures.base import DPI, _new_figure, _plain, save_figure


def image_grid(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], *, out_dir: Path, stem: str,
               title: str | None = None) -> list[Path]:
    """Rows of labelled uint8 images (HxWx3, HxWx4 or HxW gray), row label at left, column titles from row 0.

    Typical use: one row per photo; columns gray input, top-1..top-k colorizations, ground truth. Cells are
    sized so a 256 px tile is drawn near 1:1 at 120 dpi, with nearest-neighbour sampling so no smoothing hides
    colour artefacts. Images may differ in size between rows.
    """
    ncols = max((len(images) for _, images in rows), default=0)
    if ncols == 0:
        return []
    for row_label, images in rows:
        for col_label, image in images:
            _check_image(image, where=f"{row_label!r} / {col_label!r}")
    shapes = [np.shape(image) for _, images in rows for _, image in images]
    cell = float(np.clip(max(w for _, w, *_ in shapes) / DPI, 1.2, 4.0))
    ratios = [max((np.shape(img)[0] / np.shape(img)[1] for _, img in images), default=1.0) for _, images in rows]
    fig = _new_figure(width=cell * ncols + 1.0, height=cell * sum(ratios) + 0.5 + (0.4 if title else 0))
    grid = fig.subplots(len(rows), ncols, squeeze=False, height_ratios=ratios)
    for axes, (row_label, images) in zip(grid, rows):
        for ax, index in zip(axes, range(ncols)):
            _image_cell(ax, images[index][1] if index < len(images) else None)
        axes[0].set_ylabel(_plain(row_label), fontsize="small")
    for ax, (col_label, _) in zip(grid[0], rows[0][1]):
        ax.set_title(_plain(col_label), fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_dir, stem)


def _check_image(image: np.ndarray, *, where: str) -> None:
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image {where}: expected uint8 HxWx3 (or HxW, HxWx4), got {array.dtype} {array.shape}")


def _image_cell(ax: Axes, image: np.ndarray | None) -> None:
    """No ticks or frame (but keep the axes on, so the row label still shows); blank cell when ``image`` is None."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if image is not None:
        gray = np.ndim(image) == 2
        ax.imshow(image, interpolation="nearest", cmap="gray" if gray else None, vmin=0 if gray else None,
                  vmax=255 if gray else None)
