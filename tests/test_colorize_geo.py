"""``aircolor colorize`` for GIS: Cloud-Optimized GeoTIFF outputs and the mosaic VRT over a colorized archive.

The photos are the real 1936-1942 GSI samples with their real Web-Mercator georeferencing (computed from the tile
indices in their names, as tests/test_colorize.py does): 1024 px z17 photos as 8-bit (nodata corner) and 16-bit
(gray + alpha) GeoTIFFs and as a plain JPEG, and the neighbouring 256 px z18 tiles, which form a 2 x 2 mosaic. The
model is the session's tiny trained one (``lab_generator``); ``--scale 0.25`` keeps the 1024 px photos cheap
(the model sees 256 px, the outputs keep full resolution and so get overviews).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_colorize import Z17, Z18, _write_geotiff, load
from test_colorize_ray import colorize_here, ray_colorize_here

Z18_DIR = Path(Z18).parent
SCALE = ["--scale", "0.25"]


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "colorize-summary.json").read_text())


def write_gray_alpha_16(path: Path, gray: np.ndarray, alpha: np.ndarray, *, x: int, y: int, z: int) -> None:
    """A 16-bit gray + alpha GeoTIFF at the Web-Mercator place of tile (x, y, z)."""
    import rasterio
    from rasterio.enums import ColorInterp

    _write_geotiff(path, gray, x=x, y=y, z=z)  # the georeferencing, then the two bands over it
    with rasterio.open(path) as ds:
        profile = dict(ds.profile, count=2)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([gray, alpha]))
        dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]


def z17_tile(name: str) -> tuple[int, int, int]:
    """(x, y, 17) from a name such as ``OHG-Z17-X114852-Y51992.jpg``."""
    parts = Path(name).stem.split("-")
    return int(parts[2][1:]), int(parts[3][1:]), 17


@pytest.fixture(scope="module")
def big_scans(tmp_path_factory, sample_data) -> Path:
    """1024 px photos: an 8-bit GeoTIFF with a nodata corner, a 16-bit gray + alpha GeoTIFF, a plain JPEG."""
    root = tmp_path_factory.mktemp("big") / "scans"
    root.mkdir()
    x, y, z = z17_tile(Z17)
    gray = load(sample_data / Z17, "L").copy()
    gray[gray == 0] = 1
    gray[:40, :60] = 0
    _write_geotiff(root / "geo8.tif", gray, x=x, y=y, z=z, nodata=0)
    alpha = np.full(gray.shape, 65535, np.uint16)
    alpha[-50:, -70:] = 0
    write_gray_alpha_16(root / "geo16.tif", gray.astype(np.uint16) * 257 + 3, alpha, x=x, y=y, z=z)
    shutil.copy(sample_data / Z17, root / "plain.jpg")
    return root


def tile_archive(root: Path, sample_data: Path) -> list[Path]:
    """The 2 x 2 block of neighbouring z18 tiles in two sub-folders: three GeoTIFFs and one PNG georeferenced by
    its sidecars (world file + .aux.xml CRS, as GDAL writes them)."""
    import rasterio

    made = []
    for i, (x, y) in enumerate([(229749, 104184), (229750, 104184), (229749, 104185), (229750, 104185)]):
        gray = load(sample_data / Z18_DIR / f"x{x}_y{y}.png", "L")
        folder = root / f"row{y}"
        folder.mkdir(parents=True, exist_ok=True)
        made.append(folder / f"x{x}.tif")
        transform, crs = _write_geotiff(made[-1], gray, x=x, y=y, z=18)
        if i == 3:  # the same tile as a PNG with sidecars
            made[-1].unlink()
            made[-1] = made[-1].with_suffix(".png")
            with rasterio.open(made[-1], "w", driver="PNG", width=256, height=256, count=1, dtype="uint8", crs=crs,
                               transform=transform, WORLDFILE="YES") as dst:
                dst.write(gray, 1)
            assert made[-1].with_suffix(".wld").exists() and made[-1].with_name(made[-1].name + ".aux.xml").exists()
    return made


def assert_valid_cog(path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    valid, errors, warnings = cog_validate(str(path), quiet=True)
    assert valid and not errors and not warnings, (path, errors, warnings)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the plain JPEG's COG, read here
def test_cog_outputs_are_valid_at_every_overview_level_and_lossless(tmp_path, big_scans, lab_generator):
    """--format cog: a valid COG (512 px tiles, DEFLATE, overviews) for georeferenced 8-bit (nodata) and 16-bit
    (alpha) GeoTIFFs and a plain JPEG; every overview level opens with the input's CRS and the scaled transform;
    full resolution is the plain TIFF's pixels exactly (lossless)."""
    import rasterio
    from rasterio.enums import ColorInterp, Compression

    cog, plain = tmp_path / "cog", tmp_path / "plain"
    assert colorize_here("--model", str(lab_generator), str(big_scans), "--out", str(cog), "--format", "cog",
                         *SCALE) == 0
    assert colorize_here("--model", str(lab_generator), str(big_scans), "--out", str(plain), "--format", "tiff",
                         *SCALE) == 0
    for name in ("geo8.tif", "geo16.tif", "plain.tif"):
        assert_valid_cog(cog / name)
        src_name = name if name != "plain.tif" else "plain.jpg"
        with rasterio.open(cog / name) as ds, rasterio.open(plain / name) as ref:
            src_crs, src_transform = (None, None) if name == "plain.tif" else _georef(big_scans / src_name)
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ref.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") is None  # --format tiff: plain, as asked
            assert ds.compression == Compression.deflate and set(ds.block_shapes) == {(512, 512)}
            assert ds.overviews(1) == [2] and ds.crs == src_crs                  # 1024 -> 512: one tile
            assert (ds.read() == ref.read()).all() and ds.profile["dtype"] == ref.profile["dtype"]
            assert ds.nodata == ref.nodata and ds.colorinterp == ref.colorinterp
            full, factors = ds.read(), ds.overviews(1)
        for level, factor in enumerate(factors):
            with rasterio.open(cog / name, overview_level=level) as ov:
                assert (ov.width, ov.height) == (1024 // factor, 1024 // factor) and ov.crs == src_crs
                if src_transform is not None:
                    assert ov.transform.almost_equals(src_transform @ src_transform.scale(factor))
                small = ov.read()
                # the overview is the average of the full image (GDAL's AVERAGE): close to a 2 x 2 box mean
                box = full[:3].reshape(3, 512, 2, 512, 2).astype(np.float64).mean(axis=(2, 4))
                inside = (slice(None), slice(30, -30), slice(40, -40))
                assert np.abs(small[:3][inside] - box[inside]).mean() < 0.6
    with rasterio.open(cog / "geo8.tif") as ds:
        assert ds.nodata == 0 and (ds.read()[:, :40, :60] == 0).all()
        with rasterio.open(cog / "geo8.tif", overview_level=0) as ov:
            assert (ov.read()[:, :20, :30] == 0).all()                          # nodata stays nodata
    with rasterio.open(cog / "geo16.tif") as ds:
        assert ds.dtypes[0] == "uint16" and ds.colorinterp[3] == ColorInterp.alpha
        assert (ds.read(4)[-50:, -70:] == 0).all() and (ds.read(4)[:-50] == 65535).all()
    # the two georeferenced outputs differ in bands and depth: one mosaic each, named by what differs
    mosaics = {Path(m["path"]).name: m for m in summary_of(cog)["mosaics"]}
    assert set(mosaics) == {"colorized-mosaic-rgb8.vrt", "colorized-mosaic-rgba16.vrt"}
    assert all(m["files"] == 1 and m["crs"] == "EPSG:3857" for m in mosaics.values())


def _georef(path: Path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.crs, ds.transform


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the test's own plain TIFF
def test_format_same_writes_a_cog_for_a_geotiff_above_the_threshold(tmp_path, big_scans, sample_data,
                                                                   lab_generator, monkeypatch):
    """The default (--format same) writes a COG for a GeoTIFF with a side above COG_MIN_SIDE only: not for a
    smaller GeoTIFF, not for a plain (not georeferenced) TIFF of the same size, not below the threshold."""
    import rasterio

    from aircolor.colorize import geo

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(big_scans / "geo8.tif", src / "big.tif")
    with rasterio.open(big_scans / "geo8.tif") as ds:
        profile, data = dict(ds.profile), ds.read()
    for key in ("crs", "transform", "nodata"):
        profile.pop(key)
    with rasterio.open(src / "plain.tif", "w", **profile) as dst:   # the same photo, no georeferencing
        dst.write(data)
    _write_geotiff(src / "small.tif", load(sample_data / Z18, "L"), x=229749, y=104184, z=18)

    def layouts(out: Path) -> dict[str, str | None]:
        found = {}
        for name in ("big.tif", "plain.tif", "small.tif"):
            with rasterio.open(out / name) as ds:
                found[name] = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        return found

    assert geo.COG_MIN_SIDE == 4096
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(tmp_path / "default"), *SCALE) == 0
    assert layouts(tmp_path / "default") == {"big.tif": None, "plain.tif": None, "small.tif": None}
    monkeypatch.setattr(geo, "COG_MIN_SIDE", 1000)
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(tmp_path / "low"), *SCALE) == 0
    assert layouts(tmp_path / "low") == {"big.tif": "COG", "plain.tif": None, "small.tif": None}
    assert_valid_cog(tmp_path / "low" / "big.tif")
    with rasterio.open(tmp_path / "low" / "big.tif", overview_level=0) as ov, \
            rasterio.open(tmp_path / "default" / "big.tif") as ref:
        assert ov.width == 512 and ov.crs == ref.crs and ov.read().any()
    # --format tiff keeps a large GeoTIFF plain
    assert colorize_here("--model", str(lab_generator), str(src / "big.tif"), "--out", str(tmp_path / "tiff"),
                         "--format", "tiff", *SCALE) == 0
    with rasterio.open(tmp_path / "tiff" / "big.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") is None


def read_mosaic(vrt: Path, outputs: list[Path]) -> None:
    """The VRT covers the union of the outputs' bounds and holds each output's pixels at its place."""
    import rasterio
    from rasterio.windows import from_bounds

    with rasterio.open(vrt) as ds:
        boxes = []
        for out in outputs:
            with rasterio.open(out) as o:
                assert o.crs == ds.crs
                boxes.append(o.bounds)
                window = from_bounds(*o.bounds, transform=ds.transform).round_offsets().round_lengths()
                assert (window.width, window.height) == (o.width, o.height)
                assert (ds.read([1, 2, 3], window=window) == o.read([1, 2, 3])).all(), out
        union = (min(b.left for b in boxes), min(b.bottom for b in boxes), max(b.right for b in boxes),
                 max(b.top for b in boxes))
        assert np.allclose(tuple(ds.bounds), union, atol=1e-6 * max(map(abs, union)))


def test_mosaic_vrt_covers_every_output_and_reruns_keep_it_complete(tmp_path, sample_data, lab_generator):
    src, out = tmp_path / "tiles", tmp_path / "out"
    inputs = tile_archive(src, sample_data)
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    outputs = [out / p.relative_to(src) for p in inputs]
    vrt = out / "colorized-mosaic.vrt"
    read_mosaic(vrt, outputs)
    assert summary_of(out)["mosaics"] == [{"path": str(vrt), "crs": "EPSG:3857", "files": 4}]
    text = vrt.read_text()
    assert str(tmp_path) not in text and text.count('relativeToVRT="1"') == 4 * 3   # 4 outputs x 3 bands
    moved = tmp_path / "moved"                                       # relative paths: the folder can move
    shutil.copytree(out, moved)
    read_mosaic(moved / "colorized-mosaic.vrt", [moved / p.relative_to(src) for p in inputs])
    # a rerun after one output was lost: the mosaic lists the three skipped outputs too
    outputs[1].unlink()
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    assert summary_of(out)["counts"] == {"done": 1, "skipped": 3, "failed": 0}
    read_mosaic(vrt, outputs)
    assert not list(out.rglob(".*.tmp"))
    # a photo in another CRS (Swiss LV95): one mosaic per CRS, named by EPSG code; the single one goes
    _write_swiss(src / "row104185" / "bern.tif", load(sample_data / Z18, "L"))
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    assert not vrt.exists()
    by_name = {Path(m["path"]).name: m["files"] for m in summary_of(out)["mosaics"]}
    assert by_name == {"colorized-mosaic-EPSG-3857.vrt": 4, "colorized-mosaic-EPSG-2056.vrt": 1}
    read_mosaic(out / "colorized-mosaic-EPSG-3857.vrt", outputs)
    read_mosaic(out / "colorized-mosaic-EPSG-2056.vrt", [out / "row104185" / "bern.tif"])


def _write_swiss(path: Path, gray: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=gray.shape[1], height=gray.shape[0], count=1,
                       dtype="uint8", crs="EPSG:2056", transform=from_origin(2600000, 1200000, 0.5, 0.5)) as dst:
        dst.write(gray, 1)


def test_mosaic_of_outputs_at_different_resolutions_places_each_by_its_bounds(tmp_path, sample_data,
                                                                             lab_generator):
    """A 512 px tile over the extent of a 256 px neighbour's size x 2 (half its pixel size): the VRT takes the
    finest resolution and draws the coarse output over its whole extent, not over a quarter of it."""
    import rasterio
    from rasterio.windows import from_bounds

    src, out = tmp_path / "tiles", tmp_path / "out"
    src.mkdir()
    fine = np.asarray(Image.open(sample_data / Z18).convert("L").resize((512, 512)))
    _write_geotiff(src / "a_fine.tif", fine, x=229749, y=104184, z=18)
    _write_geotiff(src / "b_coarse.tif", load(sample_data / Z18_DIR / "x229750_y104184.png", "L"), x=229750,
                   y=104184, z=18)
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    with rasterio.open(out / "colorized-mosaic.vrt") as ds, rasterio.open(out / "b_coarse.tif") as coarse:
        assert (ds.width, ds.height) == (1024, 512)
        window = from_bounds(*coarse.bounds, transform=ds.transform).round_offsets().round_lengths()
        assert (window.col_off, window.width, window.height) == (512, 512, 512)
        seen = ds.read([1, 2, 3], window=window, out_shape=(3, 256, 256))
        assert np.abs(seen.astype(int) - coarse.read([1, 2, 3]).astype(int)).mean() < 1.0


def test_overlapping_photos_with_alpha_compose_through_it_in_the_mosaic(tmp_path, sample_data, lab_generator):
    """Aerial photos overlap: the later photo's transparent edge over its neighbour must show the neighbour's
    colours in the mosaic, not the colours the model gave the transparent pixels."""
    import rasterio
    from rasterio.transform import Affine

    src, out = tmp_path / "overlap", tmp_path / "out"
    src.mkdir()
    gray_a, gray_b = (load(sample_data / Z18_DIR / f"x{x}_y104184.png", "L") for x in (229749, 229750))
    transform, _ = _write_geotiff(src / "a.tif", gray_a, x=229749, y=104184, z=18)
    alpha = np.full(gray_a.shape, 255, np.uint8)
    write_gray_alpha(src / "a.tif", gray_a, alpha, transform)
    alpha_b = alpha.copy()
    alpha_b[:, :128] = 0                                           # its half over a.tif is transparent
    write_gray_alpha(src / "b.tif", gray_b, alpha_b, transform @ Affine.translation(128, 0))
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    with rasterio.open(out / "colorized-mosaic.vrt") as ds, rasterio.open(out / "a.tif") as a, \
            rasterio.open(out / "b.tif") as b:
        assert (ds.width, ds.height, ds.count) == (384, 256, 4)
        assert (b.read([1, 2, 3])[:, :, :128] != a.read([1, 2, 3])[:, :, 128:]).any()  # so the test can tell
        assert (ds.read(window=((0, 256), (0, 256))) == a.read()).all()
        assert (ds.read(window=((0, 256), (256, 384))) == b.read()[:, :, 128:]).all()


def write_gray_alpha(path: Path, gray: np.ndarray, alpha: np.ndarray, transform) -> None:
    """An 8-bit gray + alpha GeoTIFF in Web Mercator."""
    import rasterio
    from rasterio.enums import ColorInterp

    with rasterio.open(path, "w", driver="GTiff", width=gray.shape[1], height=gray.shape[0], count=2,
                       dtype="uint8", crs="EPSG:3857", transform=transform) as dst:
        dst.write(np.stack([gray, alpha]))
        dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]


def test_a_mosaic_that_cannot_be_written_fails_the_run_in_one_line_and_keeps_the_outputs(tmp_path, sample_data,
                                                                                         lab_generator, capfd):
    src, out = tmp_path / "tiles", tmp_path / "out"
    tile_archive(src, sample_data)
    (out / "colorized-mosaic.vrt").mkdir(parents=True)       # a folder where the VRT goes
    code = colorize_here("--model", str(lab_generator), str(src), "--out", str(out))
    res = capfd.readouterr()
    assert code == 1 and "Traceback" not in res.out + res.err
    failed = [line for line in res.out.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "failed: the mosaic VRT" in failed[0] and "colorized-mosaic.vrt" in failed[0]
    assert "Is a directory" in failed[0] and "outputs are complete" in failed[0]
    summary = summary_of(out)
    assert summary["counts"] == {"done": 4, "skipped": 0, "failed": 0} and "mosaics" not in summary
    assert "colorized-mosaic.vrt" in summary["mosaic_error"]
    assert len(list(out.rglob("x*.tif"))) == 3 and not list(out.rglob(".*.tmp"))
    (out / "colorized-mosaic.vrt").rmdir()                  # fixed: the rerun writes it, nothing to colorize
    assert colorize_here("--model", str(lab_generator), str(src), "--out", str(out)) == 0
    assert summary_of(out)["mosaics"][0]["files"] == 4


def test_a_cog_that_fails_while_written_leaves_nothing_under_its_name(tmp_path, big_scans, lab_generator,
                                                                     monkeypatch, capfd):
    """GDAL's COG driver writes the whole file on close; a disk that fills up then fails that photo only: no
    output and no temporary file left, the next photo is written, and the rerun completes it."""
    import rasterio.io

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(big_scans / "geo8.tif", src / "a.tif")
    shutil.copy(big_scans / "geo16.tif", src / "b.tif")
    close = rasterio.io.BufferedDatasetWriter.close

    def disk_full(self):
        close(self)
        if Path(self.name).name.startswith(".a.tif."):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(rasterio.io.BufferedDatasetWriter, "close", disk_full)
    args = ["--model", str(lab_generator), str(src), "--out", str(out), "--format", "cog", *SCALE]
    assert colorize_here(*args) == 1
    assert "No space left on device" in capfd.readouterr().out
    assert not (out / "a.tif").exists() and (out / "b.tif").exists() and not list(out.glob(".*"))
    monkeypatch.undo()
    assert colorize_here(*args) == 0 and summary_of(out)["counts"] == {"done": 1, "skipped": 1, "failed": 0}
    assert_valid_cog(out / "a.tif")


@pytest.mark.slow
def test_ray_writes_the_same_cogs_and_mosaic_byte_for_byte(tmp_path, big_scans, sample_data, lab_generator,
                                                           ray_cluster):
    from filecompare import assert_same_files

    src = tmp_path / "archive"
    shutil.copytree(big_scans, src / "big")
    tile_archive(src / "tiles", sample_data)
    one, ray = tmp_path / "one", tmp_path / "ray"
    args = ["--model", str(lab_generator), str(src), "--format", "cog", *SCALE]
    assert colorize_here(*args, "--out", str(one)) == 0
    assert ray_colorize_here(*args, "--out", str(ray), "--quiet") == 0
    assert_same_files(ray, one)
    assert len(list(one.rglob("*.tif"))) == 7
    assert {Path(m["path"]).name for m in summary_of(ray)["mosaics"]} == {
        "colorized-mosaic-rgb8.vrt", "colorized-mosaic-rgba16.vrt"}
    assert_valid_cog(ray / "big" / "geo16.tif")
