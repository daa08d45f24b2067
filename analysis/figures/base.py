"""What every figure shares: atomic, reproducible PNG + SVG saving, and small drawing helpers."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 120
MODES = ("min", "max")
#: Outcomes whose curves end before the schedule did (drawn dashed / grey).
CUT_SHORT = frozenset({"stopped early", "failed"})
SIGNIFICANCE = 0.05

# svg.hashsalt makes clip-path/hatch/image ids stable; fonttype "none" keeps text as <text> (searchable,
# selectable in the HTML report, and free of per-glyph ids).
_SAVE_RC = {"svg.hashsalt": "aircolor", "svg.fonttype": "none"}
# rc_context mutates process-wide rcParams: serialise saves so a concurrent save cannot restore them mid-render.
_SAVE_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------- saving


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` in ``out_dir`` (created if missing); return both paths.

    Each file is written to a hidden temp name in ``out_dir`` and renamed into place, so a reader (or a report
    being rebuilt) never sees half a file. The figure is closed afterwards if pyplot manages it.
    """
    if not stem or "/" in stem or os.sep in stem or stem.startswith("."):
        raise ValueError(f"stem must be a plain, non-hidden file name without suffix, got {stem!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return [_write_atomic(fig, out_dir / f"{stem}.{fmt}", fmt=fmt) for fmt in ("png", "svg")]
    finally:
        _discard(fig)


def _write_atomic(fig: Figure, path: Path, *, fmt: str) -> Path:
    """Render to ``.<name>.<pid>.<random>.tmp`` beside ``path``, then ``os.replace`` it (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    metadata = {"Date": None} if fmt == "svg" else None
    try:
        # open() (not mkstemp) so the file gets the umask's permissions, not 0600.
        with _SAVE_LOCK, matplotlib.rc_context(_SAVE_RC), open(tmp, "xb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _discard(fig: Figure) -> None:
    """Close ``fig`` in pyplot if pyplot created it; our own figures are simply garbage once dropped."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(fig.canvas, "manager", None) is not None:
        pyplot.close(fig)


# -------------------------------------------------------------------------------------------- helpers


def _new_figure(*, width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout (fits titles, outside legends and colorbars)."""
    return Figure(figsize=(width, height), layout="constrained")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _plain(text: object) -> str:
    """Data text shown literally: an unescaped ``$`` would switch matplotlib into mathtext."""
    return str(text).replace("$", r"\$")


def _floats(values: pd.Series | Sequence[object]) -> np.ndarray:
    """Numbers as float64, with None/strings that are not numbers as NaN."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def _colors(count: int) -> list[tuple[float, float, float, float]]:
    """Distinct qualitative colours; tab20 beyond ten series, cycling past twenty."""
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _direction(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


def _flag(ax: Axes, flag: str | None) -> None:
    """Print a comparability warning in red directly under the figure title."""
    if flag:
        ax.set_title(textwrap.fill(flag, width=100), color="red", fontsize="small")


def _label_width(labels: Sequence[str], *, base: float) -> float:
    """Figure width that leaves room for long tick labels (config names) without squashing the axes."""
    longest = max((len(label) for label in labels), default=0)
    return min(base + 0.07 * longest, 18.0)


def _whiskers(ax: Axes, *, y: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """Horizontal interval whiskers with caps; rows whose interval is NaN (n < 2) get none."""
    ok = np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return
    ax.hlines(y[ok], low[ok], high[ok], color="black", linewidth=1.2, zorder=3)
    ax.plot(np.concatenate([low[ok], high[ok]]), np.concatenate([y[ok], y[ok]]), linestyle="none",
            marker="|", markersize=8, color="black", zorder=3)


def _row_ends(*columns: np.ndarray) -> np.ndarray:
    """Right-most finite x of each row (at least 0): where a per-row annotation can start."""
    stacked = np.vstack([*columns, np.zeros_like(columns[0])])
    return np.nanmax(stacked, axis=0)
