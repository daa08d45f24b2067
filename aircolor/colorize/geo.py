"""Data out for GIS: Cloud-Optimized GeoTIFF outputs and one mosaic VRT over a colorized archive.

**COG** (``--format cog``, and ``--format same`` for a GeoTIFF input with a side above :data:`COG_MIN_SIDE`):
GDAL's own COG driver through rasterio, 512 px internal tiles, overviews halving down to one tile, lossless
DEFLATE with the horizontal predictor. Why DEFLATE and not JPEG-YCbCr (several times smaller): the output's L*
is the scan's own, exactly (the model only adds chroma), JPEG would change both; JPEG cannot hold 16 bits, and
turns an alpha band into a 1-bit mask. Why GDAL's driver and not ``rio_cogeo.cog_translate``: it writes from the
image in memory in one pass, through the same temporary-file-and-rename as every other output
(:func:`atomic_path`), where ``cog_translate`` copies through a WarpedVRT into an intermediate file, for images
above 120 Mpx a ``tmpXXXX.tif`` of its own in the output folder (left there, looking like an output, when a run
is killed). ``rio_cogeo.cog_validate`` checks the result in the tests. A photo without georeferencing asked for ``--format cog`` gets the same layout without
coordinates: the archive is converted whole, and the tiles and overviews make a large plain scan open fast too.

**Mosaic**: after a run, ``OUT/colorized-mosaic.vrt`` (:data:`MOSAIC`) lists every georeferenced output the summary
lists (colorized now or skipped as already done), by paths relative to ``OUT``, so QGIS opens the whole archive as
one layer. A VRT has one CRS, one band layout and one data type: outputs that differ get one VRT per group,
named by what differs (``colorized-mosaic-EPSG-2056.vrt``, ``...-rgba16.vrt``). Written with ``rio_vrt`` to a
temporary name and renamed; then each source's place is recomputed from its bounds (rio-vrt 0.3 draws every
source at its own pixel size and takes the pixel height from the width, which misplaces outputs of another
resolution) and the VRT's overview list is extended down to one 512 px block, so a zoomed-out view reads the
sources' smallest overviews.
"""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aircolor.utils import atomic_path

COG_BLOCK = 512          # internal tile side, px; overviews halve until the image fits one tile
COG_MIN_SIDE = 4096      # --format same: a GeoTIFF input with a side above this many px is written as a COG
COG_OPTIONS = {"driver": "COG", "blocksize": COG_BLOCK, "compress": "deflate", "predictor": "yes",
               "overview_resampling": "average", "bigtiff": "if_safer"}
MOSAIC = "colorized-mosaic.vrt"
MOSAIC_GLOB = "colorized-mosaic*.vrt"
TIFF = {".tif", ".tiff"}


class MosaicError(Exception):
    """The mosaic VRT could not be written (the outputs are complete and stay)."""


# ------------------------------------------------------------------------------------------------ COG
def is_georeferenced(profile: dict[str, Any] | None) -> bool:
    """A CRS, or a geotransform that is not GDAL's stand-in identity for "none"."""
    if not profile:
        return False
    transform = profile.get("transform")
    return profile.get("crs") is not None or (transform is not None and not transform.is_identity)


def wants_cog(photo: Any, target: Path, output_format: str) -> bool:
    """``--format cog``: every output. ``--format same``: a GeoTIFF input above :data:`COG_MIN_SIDE` px on a
    side. ``--format tiff`` is the way to get a plain tiled GeoTIFF of a large scan."""
    if target.suffix.lower() not in TIFF:
        return False
    if output_format == "cog":
        return True
    big = max(photo.size) > COG_MIN_SIDE  # the module attribute, read now: the tests lower it
    return output_format == "same" and big and is_georeferenced(photo.profile)  # profile: TIFF inputs only


def for_output(photo: Any, src: Path, target: Path, output_format: str) -> Any:
    """``photo`` marked for the layout its output gets (see :func:`wants_cog`). A COG of a JPEG/PNG input carries
    the georeferencing GDAL reads from its world file and ``.aux.xml`` inside: served from a bucket, a COG has no
    sidecars (they are still copied beside it)."""
    cog = wants_cog(photo, target, output_format)
    profile = photo.profile
    if cog and profile is None:
        profile = sidecar_georef(src)
    return replace(photo, cog=cog, profile=profile)


def sidecar_georef(src: Path) -> dict[str, Any] | None:
    """{crs, transform} GDAL finds for a non-TIFF image (world file, ``.aux.xml``), or None."""
    import rasterio
    from rasterio.errors import RasterioError

    from aircolor.colorize.imageio import quiet_georef

    try:
        with quiet_georef(), rasterio.open(src) as ds:
            profile = {"crs": ds.crs, "transform": ds.transform}
    except RasterioError:
        return None
    return profile if is_georeferenced(profile) else None


def overview_count(width: int, height: int) -> int:
    """How many halvings GDAL's COG driver makes: until both sides fit one :data:`COG_BLOCK` tile."""
    count = 0
    while width > COG_BLOCK or height > COG_BLOCK:
        width, height, count = (width + 1) // 2, (height + 1) // 2, count + 1
    return count


# ------------------------------------------------------------------------------------------------ mosaic
@dataclass(frozen=True)
class _Output:
    path: Path
    crs: Any
    count: int
    dtype: str
    bounds: Any
    res: tuple[float, float]
    rotated: bool = False        # a world file with rotation terms: a VRT mosaic holds north-up rasters only

    @property
    def layout(self) -> tuple[int, str]:
        return self.count, self.dtype


@dataclass(frozen=True)
class Mosaic:
    path: Path
    crs: str
    files: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "crs": self.crs, "files": self.files}


def _read_output(path: Path) -> _Output | None:
    """The header of a georeferenced output; None for the others (no CRS: no place on a map)."""
    import rasterio

    from aircolor.colorize.imageio import quiet_georef

    with quiet_georef(), rasterio.open(path) as ds:
        if ds.crs is None or ds.transform.is_identity:
            return None
        return _Output(path, ds.crs, ds.count, ds.dtypes[0], ds.bounds, (abs(ds.res[0]), abs(ds.res[1])),
                       rotated=bool(ds.transform.b or ds.transform.d))


def crs_name(crs: Any) -> str:
    """``EPSG:2056`` for the summary, or the file-name label of a CRS without an EPSG code."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs_label(crs)


def crs_label(crs: Any) -> str:
    """``EPSG-2056``, or ``crs-<8 hex of its WKT>`` for a CRS without an EPSG code."""
    code = crs.to_epsg()
    return f"EPSG-{code}" if code else "crs-" + hashlib.sha1(crs.to_wkt().encode()).hexdigest()[:8]


def _names(groups: dict[tuple[str, int, str], list[_Output]]) -> dict[tuple[str, int, str], str]:
    """:data:`MOSAIC` for one group; else each named by what differs between the groups (CRS, bands/depth)."""
    if len(groups) == 1:
        return {key: MOSAIC for key in groups}
    crss = {key[0] for key in groups}
    layouts = {key[1:] for key in groups}
    names = {}
    for key in groups:
        parts = [key[0]] if len(crss) > 1 else []
        if len(layouts) > 1:
            parts.append(("rgba" if key[1] == 4 else "rgb") + ("16" if key[2] == "uint16" else "8"))
        names[key] = f"{Path(MOSAIC).stem}-{'-'.join(parts)}.vrt"
    return names


def write_mosaics(out_dir: Path, outputs: list[Path]) -> tuple[list[Mosaic], list[str]]:
    """The mosaic VRT(s) of the georeferenced ``outputs`` (in their order: later ones are drawn on top) in
    ``out_dir``, and the georeferenced outputs left out (rotated: warp them to north-up first). Mosaics of an
    earlier run that this one does not write again are removed (they list what that run's summary listed).
    :class:`MosaicError` in one line when a VRT cannot be written."""
    try:
        found = [o for o in (_read_output(p) for p in outputs if p.is_file()) if o is not None]
        groups: dict[tuple[str, int, str], list[_Output]] = {}
        for o in found:
            if not o.rotated:
                groups.setdefault((crs_label(o.crs), *o.layout), []).append(o)  # the label: names stay unique
        written = []
        for key, name in _names(groups).items():
            _build(out_dir / name, groups[key])
            written.append(Mosaic(out_dir / name, crs_name(groups[key][0].crs), len(groups[key])))
        keep = {m.path.name for m in written}
        for stale in out_dir.glob(MOSAIC_GLOB):
            if stale.name not in keep and stale.is_file():
                stale.unlink()
    except Exception as exc:  # also a bug of the third-party builder: the run keeps its outputs and summary
        reason = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
        raise MosaicError(f"{exc.__class__.__name__}: {reason}") from exc
    return written, [str(o.path) for o in found if o.rotated]


def _build(path: Path, outputs: list[_Output]) -> None:
    """One VRT of ``outputs`` (one CRS, one layout) at ``path``, written atomically, at the finest resolution
    among them (no output loses detail)."""
    from rio_vrt import build_vrt

    res = (min(o.res[0] for o in outputs), min(o.res[1] for o in outputs))
    files = [o.path for o in outputs]
    if len(files) == 1:  # rio-vrt 0.3 takes min(*bounds), which fails for one file: the copy is dropped below
        files *= 2
    with atomic_path(path) as tmp:
        # relative paths: rio-vrt makes them relative to the VRT's folder, the same for tmp and path
        build_vrt(tmp, files, relative=True, mosaic=True, res=res)
        _place_sources(tmp, outputs, res)


def _place_sources(vrt: Path, outputs: list[_Output], res: tuple[float, float]) -> None:
    """Every source's DstRect from its bounds in the VRT's pixel grid, alpha compositing, and overviews down to
    one block."""
    tree = ET.parse(vrt)
    root = tree.getroot()
    west, _, _, north = _origin(root)
    # with an alpha band, every band composes through the sources' alpha (rio-vrt does the alpha band only): where
    # overlapping photos meet, a transparent edge of one must not blank out the other's colours
    alpha = any(band.findtext("ColorInterp") == "Alpha" for band in root.iter("VRTRasterBand"))
    for band in root.iter("VRTRasterBand"):
        sources = [el for el in band if el.tag in ("SimpleSource", "ComplexSource")]
        for extra in sources[len(outputs):]:
            band.remove(extra)
        for source, o in zip(sources, outputs):
            if alpha and source.find("UseMaskBand") is None:
                source.tag = "ComplexSource"
                ET.SubElement(source, "UseMaskBand").text = "true"
            rect = source.find("DstRect")
            box = ((o.bounds.left - west) / res[0], (north - o.bounds.top) / res[1],
                   (o.bounds.right - o.bounds.left) / res[0], (o.bounds.top - o.bounds.bottom) / res[1])
            for key, value in zip(("xOff", "yOff", "xSize", "ySize"), box):
                rect.set(key, _number(value))
    overviews = root.find("OverviewList")
    levels = overview_count(int(root.get("rasterXSize")), int(root.get("rasterYSize")))
    if overviews is not None:
        if levels:
            overviews.text = " ".join(str(2 ** i) for i in range(1, levels + 1))
            overviews.set("resampling", "average")
        else:
            root.remove(overviews)
    tree.write(vrt, encoding="unicode")


def _origin(root: ET.Element) -> tuple[float, ...]:
    """(west, x res, rotation, north) of the VRT's GeoTransform."""
    values = [float(v) for v in root.findtext("GeoTransform").split(",")]
    return values[0], values[1], values[2], values[3]


def _number(value: float) -> str:
    """An integer when the float is one up to rounding (aligned outputs stay pixel-exact), else 10 digits."""
    near = round(value)
    return str(int(near)) if math.isclose(value, near, abs_tol=1e-6) else f"{value:.10g}"
