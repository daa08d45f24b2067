"""``aircolor compare``: a georeferenced historical photo (real GSI 1936-1942 tiles of Osaka, placed where they
are) colorized with the bundled model, and today's imagery from an XYZ server, a WMTS service on the Swiss
grid, or a file, all written on the photo's own grid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_bounds, from_origin

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tile_server import TileServer  # noqa: E402

from aircolor.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "aircolor" / "default_model" / "generator.pt"
GSI = REPO / "aircolor" / "sample_data" / "historical" / "gsi_1936-1942_z18"


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def server(tile_server: TileServer) -> TileServer:
    return tile_server


def geotiff(dst: Path, gray: np.ndarray, crs: str, transform: object) -> Path:
    with rasterio.open(dst, "w", driver="GTiff", width=gray.shape[1], height=gray.shape[0], count=1, dtype="uint8",
                       crs=crs, transform=transform) as out:
        out.write(gray[None])
    return dst


@pytest.fixture
def osaka(tmp_path: Path) -> Path:
    """GSI tile x229749 y104184 at zoom 18, as a GeoTIFF on its true Web-Mercator bounds."""
    gray = np.asarray(Image.open(GSI / "x229749_y104184.png").convert("L"))
    b = morecantile.tms.get("WebMercatorQuad").xy_bounds(229749, 104184, 18)
    return geotiff(tmp_path / "osaka_1940.tif", gray, "EPSG:3857", from_bounds(*b, gray.shape[1], gray.shape[0]))


def grid_of(path: Path) -> tuple:
    with rasterio.open(path) as src:
        return src.crs, src.transform, src.width, src.height


def compare(*argv: str) -> int:
    return main(["compare", "--model", str(MODEL), "--rate", "0", *argv])


def check_products(out: Path, stem: str, colorized: str) -> dict:
    summary = json.loads((out / "compare-summary.json").read_text())
    assert Path(summary["colorized"]) == out / colorized
    assert grid_of(out / colorized) == grid_of(out / f"{stem}-modern.tif")  # identical grids
    with rasterio.open(out / f"{stem}-modern.tif") as src:
        assert src.count == 4 and src.read(4).mean() > 200  # the footprint is covered
    sizes = {Image.open(out / summary["pngs"][k]).size for k in ("swipe_colorized", "swipe_modern")}
    assert len(sizes) == 1
    w, h = sizes.pop()
    assert Image.open(out / summary["pngs"]["side_by_side"]).size == (2 * w + 8, h)
    a = summary["agreement"]
    assert a["pixels"] > 0 and a["delta_e2000_colorized"] > 0 and a["delta_e2000_gray"] > 0
    return summary


def test_compare_with_an_xyz_server(server: TileServer, osaka: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert compare(str(osaka), "--modern", server.xyz_url, "--out", str(out)) == 0
    summary = check_products(out, "osaka_1940", "osaka_1940.tif")
    assert summary["modern_source"]["zoom"] == 18  # 0.6 m/px photo: zoom 18's 0.6 m tiles
    assert server.counts[(18, 229749, 104184)] == 1
    # A rerun fetches nothing again and colorizes nothing again.
    before = sum(server.counts.values())
    assert compare(str(osaka), "--modern", server.xyz_url, "--out", str(out)) == 0
    assert sum(server.counts.values()) == before


def test_compare_with_a_wmts_on_the_swiss_grid(server: TileServer, tmp_path: Path) -> None:
    gray = np.asarray(Image.open(GSI / "x229750_y104184.png").convert("L"))
    photo = geotiff(tmp_path / "bern.tif", gray, "EPSG:2056", from_origin(2599800.0, 1199900.0, 2.0, 2.0))
    out = tmp_path / "out"
    assert compare(str(photo), "--modern", server.base + "/rest/WMTSCapabilities.xml", "--layer", "ortho",
                   "--tile-matrix-set", "LV95", "--out", str(out)) == 0
    summary = check_products(out, "bern", "bern.tif")
    assert summary["modern_source"]["tile_matrix"] == "EPSG:2056:7"  # 2 m/px
    assert summary["modern_source"]["tiles"] == 4  # 512 m of photo over 1,024 m tiles, across two rows and columns


def test_compare_with_a_file(osaka: Path, tmp_path: Path) -> None:
    # A color raster in another CRS (WGS84), covering more than the photo.
    with rasterio.open(osaka) as src:
        from rasterio.warp import transform_bounds

        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    rgb = np.asarray(Image.open(sorted((REPO / "aircolor" / "sample_data" / "color").rglob("*.jpg"))[0]).convert("RGB"))
    modern = tmp_path / "today.tif"
    pad = (east - west) / 4
    with rasterio.open(modern, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_bounds(west - pad, south - pad, east + pad, north + pad,
                                                              rgb.shape[1], rgb.shape[0])) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
    out = tmp_path / "out"
    assert compare(str(osaka), "--modern", str(modern), "--out", str(out)) == 0
    check_products(out, "osaka_1940", "osaka_1940.tif")


def test_compare_bad_input(server: TileServer, osaka: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.png"
    Image.open(GSI / "x229749_y104184.png").save(plain)
    cases = [
        ([str(plain), "--modern", "https://t.example/{z}/{x}/{y}.jpg"], "not georeferenced"),
        ([str(osaka), "--modern", "nowhere.tif"], "neither an existing raster file"),
        ([str(osaka), "--modern", "https://wmts.example.org/caps.xml"], "needs --layer"),
        ([str(tmp_path / "missing.tif"), "--modern", "x.tif"], "no such file"),
        # Checked before the photo is colorized: nothing is written.
        ([str(osaka), "--modern", server.base + "/rest/WMTSCapabilities.xml", "--layer", "nope"], "--layer 'nope'"),
        ([str(osaka), "--modern", server.xyz_url, "--zoom", "22", "--max-tiles", "3"], "more than --max-tiles 3"),
    ]
    for argv, words in cases:
        assert compare(*argv, "--out", str(tmp_path / "o")) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err and "Traceback" not in err
        assert not (tmp_path / "o").exists()
