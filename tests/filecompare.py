"""Byte-for-byte comparison of output folders with a short, readable report.

``assert files == want`` over megabytes of image bytes makes pytest diff the bytes' reprs with difflib, which
runs for many minutes (a CI run once spent its whole 900 s timeout there). These helpers compare digests and say
which files differ and by how much, in a few lines.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SKIP = ("colorize-summary.json",)


def digests(folder: Path, skip: tuple[str, ...] = SKIP) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (the run summary left out: it has timings)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


def pixel_difference(got: Path, want: Path) -> str:
    """How two image files differ in their pixels (count and largest difference), or why that cannot be said."""
    import numpy as np

    try:
        if got.suffix.lower() in (".tif", ".tiff"):
            import rasterio

            with rasterio.open(got) as a, rasterio.open(want) as b:
                x, y = a.read(), b.read()
        else:
            from PIL import Image

            x, y = np.asarray(Image.open(got)), np.asarray(Image.open(want))
    except Exception as exc:  # not an image: the byte offsets are all there is to say
        return f"not compared as an image ({type(exc).__name__})"
    if x.shape != y.shape:
        return f"shapes {x.shape} vs {y.shape}"
    diff = np.abs(x.astype(np.int64) - y.astype(np.int64))
    return f"{int((diff > 0).sum())} of {diff.size} samples differ, by at most {int(diff.max())}"


def first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def assert_same_files(got: Path, want: Path, skip: tuple[str, ...] = SKIP, count: int | None = None) -> None:
    """The two folders hold the same files with the same bytes (``count`` files, when given)."""
    have, need = digests(got, skip), digests(want, skip)
    assert sorted(have) == sorted(need), f"files differ: only in {got}: {sorted(set(have) - set(need))}; " \
                                         f"only in {want}: {sorted(set(need) - set(have))}"
    if count is not None:
        assert len(need) == count, f"{len(need)} files, expected {count}: {sorted(need)}"
    lines = []
    for name in sorted(n for n in need if have[n] != need[n]):
        a, b = (got / name).read_bytes(), (want / name).read_bytes()
        lines.append(f"{name}: {len(a)} vs {len(b)} bytes, first difference at byte {first_difference(a, b)}; "
                     f"{pixel_difference(got / name, want / name)}")
    assert not lines, f"{len(lines)} of {len(need)} files differ between {got} and {want}:\n" + "\n".join(lines)
