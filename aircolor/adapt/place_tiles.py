"""The training and validation tiles of one place: colour imagery cut into the model's tile size, split by space.

Validation is a set of spatial *blocks* (never a random tile split: neighbouring tiles share buildings, fields and
light, so a random split would score the model on ground it trained on). Where a tile sits is read from, in order:

* web-map tile names (``OAM-x-y-z``, ``..._z19_x_y``, ``z/x/y.png``): one frame, normalised Web-Mercator positions;
* window names (``<image>_y<row>_x<col>``, crops of one source image): the source image is the frame;
* anything else: each file is its own frame, its tiles placed by their offset inside it.

With five frames or more, each frame is a block (whole source images held out); with fewer, each frame is cut into
about :data:`LEAF_BLOCKS` blocks of similar tile counts by median splits of its ground (a k-d tree). Web-map tiles
of several zooms over the same ground are snapped to the coarsest zoom's tile first, so the same ground never lands
in two blocks. Validation blocks are drawn with the seed until they hold ``val_fraction`` of the tiles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aircolor.errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
MIN_TILES = 8            # 2 validation tiles and 6 training tiles at the least
FRAMES_AS_BLOCKS = 5     # this many frames or more: whole frames are the blocks
LEAF_BLOCKS = 16         # fewer frames: about this many blocks in all, by median splits
_XYZ = (re.compile(r"OAM-(?P<x>\d+)-(?P<y>\d+)-(?P<z>\d+)"),
        re.compile(r"z(?P<z>\d{1,2})[_-](?P<x>\d+)[_-](?P<y>\d+)"),
        re.compile(r"(?:^|/)(?P<z>\d{1,2})/(?P<x>\d+)/(?P<y>\d+)\.\w+$"))
_WINDOW = re.compile(r"^(?P<frame>.+?)_y(?P<y>\d+)_x(?P<x>\d+)$")


@dataclass
class PlaceTiles:
    """Tiles of one place: gray copies (N, 1, S, S) and colour (N, 3, S, S) uint8, each with its block."""

    gray: torch.Tensor
    color: torch.Tensor
    sources: list[str] = field(default_factory=list)   # the file each tile was cut from (relative to the root)
    blocks: list[str] = field(default_factory=list)    # the spatial block each tile is in
    places: list[tuple[str, float, float, float]] = field(default_factory=list)   # frame, x, y, ground size

    def __len__(self) -> int:
        return int(self.gray.size(0))

    def subset(self, index: list[int]) -> "PlaceTiles":
        idx = torch.tensor(index, dtype=torch.long)
        return PlaceTiles(self.gray[idx], self.color[idx], [self.sources[i] for i in index],
                          [self.blocks[i] for i in index], [self.places[i] for i in index] if self.places else [])

    def reblocked(self) -> "PlaceTiles":
        """The same tiles with blocks drawn afresh over them alone (as ``adapt`` does for a folder of just these)."""
        frames = [p[0] for p in self.places]
        blocks = assign_blocks(frames, [(p[1], p[2]) for p in self.places], [p[3] for p in self.places])
        return PlaceTiles(self.gray, self.color, list(self.sources), blocks, list(self.places))


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursive, sorted)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def name_position(rel: str) -> tuple[str, float, float, float] | None:
    """(frame, x, y, frame units per image pixel) of a file's top-left corner from its name, or None. Web-map
    tiles: normalised Web-Mercator units (a zoom-z tile is 2**-z wide)."""
    stem = Path(rel).stem
    for pattern in _XYZ:
        m = pattern.search(rel if pattern.pattern.endswith("$") else stem)
        if m:
            z, x, y = int(m["z"]), int(m["x"]), int(m["y"])
            if z <= 30:
                return "web-mercator", x / 2 ** z, y / 2 ** z, 1 / (256 * 2 ** z)
    m = _WINDOW.match(stem)
    if m:
        return str(Path(rel).parent / m["frame"]), float(m["x"]), float(m["y"]), 1.0
    return None


def _is_gray(rgb: np.ndarray) -> bool:
    return bool(np.abs(rgb[..., 0].astype(np.int16) - rgb[..., 1]).max() <= 2
                and np.abs(rgb[..., 1].astype(np.int16) - rgb[..., 2]).max() <= 2)


def _open_rgb(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 (H, W, 3) and an opaque mask (or None) of an image file."""
    with Image.open(path) as im:
        im.load()
        alpha = np.asarray(im.getchannel("A")) > 0 if "A" in im.getbands() else None
        return np.asarray(im.convert("RGB")), alpha


def _cut(rgb: np.ndarray, alpha: np.ndarray | None, size: int, scale: float) -> list[tuple[int, int, np.ndarray]]:
    """Non-overlapping ``size`` tiles (row, col in source pixels, RGB) of the image resized by ``scale``; tiles
    with more than 1% transparent pixels are dropped."""
    h, w = rgb.shape[:2]
    if scale != 1.0:
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.LANCZOS))
        if alpha is not None:
            alpha = np.asarray(Image.fromarray(alpha.astype(np.uint8) * 255).resize((nw, nh))) > 127
    tiles = []
    for r in range(0, rgb.shape[0] - size + 1, size):
        for c in range(0, rgb.shape[1] - size + 1, size):
            if alpha is not None and (~alpha[r:r + size, c:c + size]).mean() > 0.01:
                continue
            tiles.append((round(r / scale), round(c / scale), rgb[r:r + size, c:c + size]))
    return tiles


class TileCollector:
    """Collects the tiles of images, each placed in a frame (see the module docstring), then splits them."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        self.size, self.scale = size, scale
        self.colors: list[np.ndarray] = []
        self.sources: list[str] = []
        self.frames: list[str] = []
        self.xy: list[tuple[float, float]] = []
        self.snap: list[float] = []      # each tile's ground size in its frame's units
        self.images = self.gray_images = self.small_images = 0

    def add(self, rgb: np.ndarray, alpha: np.ndarray | None, source: str,
            place: tuple[str, float, float, float] | None = None) -> None:
        """The tiles of one image; ``place`` = (frame, x, y of its top-left corner, frame units per pixel)."""
        self.images += 1
        if _is_gray(rgb):
            self.gray_images += 1
            return
        tiles = _cut(rgb, alpha, self.size, self.scale)
        if not tiles:
            self.small_images += 1
        frame, x0, y0, unit = place or (source, 0.0, 0.0, 1.0)
        for row, col, tile in tiles:
            self.colors.append(tile)
            self.sources.append(source)
            self.frames.append(frame)
            self.xy.append((x0 + (col + self.size / self.scale / 2) * unit,
                            y0 + (row + self.size / self.scale / 2) * unit))
            self.snap.append(self.size / self.scale * unit)

    def tiles(self, where: str) -> PlaceTiles:
        """All tiles, each with its block; one clear line when there are too few to adapt on."""
        n = len(self.colors)
        if self.images == 0:
            raise UsageError(f"{where}: no images ({', '.join(IMAGE_SUFFIXES)}); give colour imagery of the place")
        if self.gray_images == self.images:
            raise UsageError(f"{where}: all {self.images} image(s) are gray; adapt learns colours from colour "
                             f"imagery of the place (today's orthophotos)")
        if n < MIN_TILES:
            raise UsageError(f"{where}: {n} tile(s) of {self.size} px from {self.images} image(s), fewer than the "
                             f"{MIN_TILES} needed (some to train on, some to check on); give more imagery of the "
                             f"place" + (f" ({self.small_images} image(s) are smaller than one tile at scale "
                                         f"{self.scale:g})" if self.small_images else ""))
        color = torch.from_numpy(np.stack(self.colors)).permute(0, 3, 1, 2).contiguous()
        gray = torch.from_numpy(np.stack([np.asarray(Image.fromarray(c).convert("L")) for c in self.colors]))
        places = [(f, x, y, g) for f, (x, y), g in zip(self.frames, self.xy, self.snap)]
        return PlaceTiles(gray.unsqueeze(1), color, list(self.sources), assign_blocks(self.frames, self.xy, self.snap),
                          places)


def _kd_leaves(points: np.ndarray, leaves: int) -> np.ndarray:
    """A leaf number for every point: median splits along the wider axis until ``leaves`` leaves (points with
    equal coordinates always stay together)."""
    out = np.zeros(len(points), dtype=int)
    parts = [np.arange(len(points))]
    while len(parts) < leaves:
        parts.sort(key=len)
        idx = parts.pop()
        p = points[idx]
        axis = int(np.argmax(p.max(axis=0) - p.min(axis=0)))
        values = np.unique(p[:, axis])
        if len(values) < 2:
            parts.append(idx)
            break
        cut = values[max(1, np.searchsorted(values, np.median(p[:, axis])))]
        parts += [idx[p[:, axis] < cut], idx[p[:, axis] >= cut]]
    for leaf, idx in enumerate(parts):
        out[idx] = leaf
    return out


def assign_blocks(frames: list[str], xy: list[tuple[float, float]], snap: list[float] | None = None) -> list[str]:
    """The block of every tile: its frame when there are enough frames, else a k-d leaf of its frame's ground.
    ``snap``: each tile's ground size, where tiles of several sizes may overlap (web-map zooms)."""
    names = sorted(set(frames))
    if len(names) >= FRAMES_AS_BLOCKS:
        return list(frames)
    pts = np.asarray(xy, dtype=np.float64)
    out = [""] * len(frames)
    for f in names:
        idx = np.array([i for i, g in enumerate(frames) if g == f])
        p = pts[idx]
        if snap is not None:
            coarse = max(snap[i] for i in idx)
            p = (np.floor(p / coarse) + 0.5) * coarse
        for i, leaf in zip(idx, _kd_leaves(p, math.ceil(LEAF_BLOCKS / len(names)))):
            out[i] = f"{f}#{leaf}"
    return out


def split_blocks(tiles: PlaceTiles, val_fraction: float, seed: int, where: str) -> tuple[PlaceTiles, PlaceTiles]:
    """(training, validation) tiles: whole blocks drawn in a seeded order until validation holds ``val_fraction``
    of the tiles (at least one block); training keeps at least half of them."""
    blocks = sorted(set(tiles.blocks))
    if len(blocks) < 2:
        raise UsageError(f"{where}: all {len(tiles)} tiles lie in one spatial block, so none can be held out to "
                         f"check the adapted model on; give imagery of a larger area")
    order = np.random.default_rng(seed).permutation(len(blocks))
    want = max(2, math.ceil(val_fraction * len(tiles)))
    held: set[str] = set()
    count = 0
    for i in order:
        if count >= want:
            break
        size = tiles.blocks.count(blocks[i])
        if held and count + size > len(tiles) // 2:
            continue
        held.add(blocks[i])
        count += size
    val = [i for i, b in enumerate(tiles.blocks) if b in held]
    train = [i for i, b in enumerate(tiles.blocks) if b not in held]
    if len(train) < MIN_TILES - 2 or not val:
        raise UsageError(f"{where}: its {len(blocks)} spatial blocks cannot be split into training and validation "
                         f"tiles ({len(train)} / {len(val)}); give imagery of a larger area")
    return tiles.subset(train), tiles.subset(val)


def load_folder(folder: Path, size: int, scale: float = 1.0) -> PlaceTiles:
    """The tiles of every colour image under ``folder`` (see the module docstring); gray images are skipped."""
    if not folder.is_dir():
        raise UsageError(f"--modern {folder}: no such folder or file")
    collector = TileCollector(size, scale)
    for path in image_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            rgb, alpha = _open_rgb(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UsageError(f"--modern {path}: cannot read the image ({exc}); remove it or fix it") from None
        collector.add(rgb, alpha, rel, name_position(rel))
    return collector.tiles(f"--modern {folder}")
