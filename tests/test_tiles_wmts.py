"""``fetch-tiles --wmts``: a real WMTS on 127.0.0.1 (tests/tile_server.py) whose capabilities offer one layer in
a Web-Mercator, an ETRS89-LAEA (EPSG:3035, northing first) and a Swiss LV95 (EPSG:2056) tile matrix set, with
real aerial JPEG tiles. Bounds are checked against morecantile's own sets, and against rasterio reading the
georeferenced tiles back."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import morecantile
import pytest
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tile_server import TileServer  # noqa: E402
from wmts_capabilities import SWISS_LIMITS_Z7, swiss_tms  # noqa: E402

from aircolor.data import tiles as T  # noqa: E402
from aircolor.errors import UsageError  # noqa: E402

BERN = "7.43,46.94,7.46,46.955"  # W,S,E,N around Bern: inside all three sets
OSAKA = "135.50,34.59,135.53,34.61"


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def server(tile_server: TileServer) -> TileServer:
    return tile_server


def kvp(server: TileServer) -> str:
    return server.base + "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"


def rest(server: TileServer) -> str:
    return server.base + "/rest/WMTSCapabilities.xml"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="aircolor data")
    T.register_cli(parser.add_subparsers())
    args = parser.parse_args(["fetch-tiles", "--rate", "0", "--backoff", "0.01", "--timeout", "5", *argv])
    return T._cli_fetch(args)


def index_rows(out: Path) -> dict[tuple[int, int, int], dict[str, str]]:
    with open(out / T.INDEX_NAME, newline="") as fh:
        return {tuple(int(p) for p in r["tile"].split("/")): r for r in csv.DictReader(fh)}  # type: ignore[misc]


def assert_bounds(row: dict[str, str], expected: morecantile.models.BoundingBox) -> None:
    got = [float(row[k]) for k in ("minx", "miny", "maxx", "maxy")]
    assert got == pytest.approx([expected.left, expected.bottom, expected.right, expected.top], abs=1e-3)


def assert_georeferenced(path: Path, epsg: int, expected: morecantile.models.BoundingBox) -> None:
    """GDAL (through rasterio) reads the tile's CRS and place from the tile alone or its sidecars."""
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == epsg
        b = src.bounds
        assert [b.left, b.bottom, b.right, b.top] == pytest.approx(
            [expected.left, expected.bottom, expected.right, expected.top], abs=1e-3)


def test_web_mercator_set_through_kvp(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "wm"
    assert run("--wmts", kvp(server), "--layer", "ortho", "--bbox", OSAKA, "--zoom", "15", "--out", str(out)) == 0
    tms = morecantile.tms.get("WebMercatorQuad")
    expected = set(T.tiles_in_bbox(135.50, 34.59, 135.53, 34.61, 15))  # the layer's only Web-Mercator set
    rows = index_rows(out)
    assert set(rows) == expected and all(r["status"] == "fetched" and r["crs"] == "EPSG:3857" for r in rows.values())
    assert all("TILEMATRIX=WebMercatorQuad%3A15" in p or "TILEMATRIX=WebMercatorQuad:15" in p
               for p in server.path_counts)
    assert all("FORMAT=image%2Fjpeg" in p for p in server.path_counts)  # JPEG preferred over the listed PNG
    z, x, y = sorted(expected)[0]
    assert_bounds(rows[(z, x, y)], tms.xy_bounds(x, y, z))
    assert_georeferenced(out / rows[(z, x, y)]["file"], 3857, tms.xy_bounds(x, y, z))
    assert (out / str(z) / str(x) / f"{y}.jgw").is_file()


def test_laea_set_northing_first(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "laea"
    assert run("--wmts", kvp(server), "--layer", "ortho", "--tile-matrix-set", "LAEA", "--bbox", BERN,
               "--zoom", "10", "--out", str(out)) == 0
    tms = morecantile.tms.get("EuropeanETRS89_LAEAQuad")
    rows = index_rows(out)
    w, s, e, n = (float(v) for v in BERN.split(","))
    corners = {(10, t.x, t.y) for t in (tms.tile(w, n, 10), tms.tile(e, s, 10), tms.tile((w + e) / 2, (s + n) / 2, 10))}
    assert corners <= set(rows) and len(rows) <= 6
    for (z, x, y), row in rows.items():
        assert row["tile_matrix"] == f"LAEA:{z}" and row["crs"] == "EPSG:3035"
        assert_bounds(row, tms.xy_bounds(x, y, z))
        assert_georeferenced(out / row["file"], 3035, tms.xy_bounds(x, y, z))
        ll = tms.bounds(x, y, z)
        ring = [tuple(map(float, p.split())) for p in row["wkt"][len("POLYGON(("):-2].split(",")]
        assert ring[0] == ring[-1] == pytest.approx((ll.left, ll.bottom), abs=1e-8)
        assert ring[2] == pytest.approx((ll.right, ll.top), abs=1e-8)
    assert all("TILEMATRIXSET=LAEA" in p for p in server.path_counts)


def test_swiss_set_rest_limits_geotiff_and_resume(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "lv95"
    argv = ["--wmts", rest(server), "--layer", "ortho", "--tile-matrix-set", "LV95", "--bbox", BERN, "--zoom", "7",
            "--out", str(out), "--format", "tif"]
    assert run(*argv) == 0
    tms = swiss_tms()
    c0, c1, r0, r1 = SWISS_LIMITS_Z7
    w, s, e, n = (float(v) for v in BERN.split(","))
    in_bbox = {(7, t.x, t.y) for t in tms.tiles(w, s, e, n, [7])}
    within = {t for t in in_bbox if c0 <= t[1] <= c1 and r0 <= t[2] <= r1}
    assert within and within != in_bbox  # the limits cut the bbox's tiles
    rows = index_rows(out)
    assert set(rows) == within
    for (z, x, y), row in rows.items():
        assert row["file"] == f"{z}/{x}/{y}.tif" and row["tile_matrix"] == f"EPSG:2056:{z}"
        assert_bounds(row, tms.xy_bounds(x, y, z))
        assert_georeferenced(out / row["file"], 2056, tms.xy_bounds(x, y, z))
    assert all(p.startswith("/rest/ortho/default/LV95/EPSG:2056:7/") for p in server.path_counts)
    # A resumed fetch makes no request for finished tiles, and the index says they were present.
    (out / rows[min(rows)]["file"]).unlink()
    before = sum(server.counts.values())
    assert run(*argv) == 0
    assert sum(server.counts.values()) == before + 1
    statuses = sorted(r["status"] for r in index_rows(out).values())
    assert statuses == ["fetched"] + ["present"] * (len(within) - 1)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--layer", "buildings"], ["--layer 'buildings'", "ortho", "roads"]),
        (["--layer", "roads"], ["image/svg+xml", "JPEG"]),
        (["--layer", "ortho", "--tile-matrix-set", "UTM32"], ["--tile-matrix-set 'UTM32'", "LV95", "LAEA"]),
        ([], ["--wmts needs --layer"]),
        (["--layer", "ortho", "--matrix-id", "EPSG:3857:{z}"], ["--matrix-id goes with --url"]),
    ],
)
def test_wmts_bad_input(server: TileServer, tmp_path: Path, extra: list[str], words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        run("--wmts", kvp(server), *extra, "--bbox", BERN, "--zoom", "7", "--out", str(tmp_path / "o"))
    for w in words:
        assert w in str(err.value)
    assert not (tmp_path / "o").exists()


def test_wmts_not_capabilities_and_outside_the_set(server: TileServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not WMTS capabilities"):
        run("--wmts", server.base + "/xyz/16/57437/26046.jpg", "--layer", "ortho", "--bbox", BERN, "--zoom", "7",
            "--out", str(tmp_path / "o"))
    with pytest.raises(UsageError, match="lies outside the LV95"):
        run("--wmts", rest(server), "--layer", "ortho", "--tile-matrix-set", "LV95", "--bbox", OSAKA, "--zoom", "7",
            "--out", str(tmp_path / "o"))
    with pytest.raises(UsageError, match="--layer goes with --wmts"):
        run("--url", server.xyz_url, "--layer", "ortho", "--bbox", OSAKA, "--zoom", "7", "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_second_tile_matrix_set_in_one_folder_is_refused(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert run("--wmts", rest(server), "--layer", "ortho", "--tile-matrix-set", "LAEA", "--bbox", BERN, "--zoom",
               "9", "--out", str(out)) == 0
    with pytest.raises(UsageError, match="holds tiles of the tile matrix set LAEA"):
        run("--wmts", rest(server), "--layer", "ortho", "--tile-matrix-set", "LV95", "--bbox", BERN, "--zoom", "7",
            "--out", str(out))


def test_dry_run_names_the_matrices(server: TileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--wmts", rest(server), "--layer", "ortho", "--tile-matrix-set", "LV95", "--bbox", BERN, "--zoom",
               "6-7", "--out", str(tmp_path / "o"), "--dry-run") == 0
    printed = capsys.readouterr().out
    assert "TileMatrix EPSG:2056:7, 2 metre/px" in printed and "TileMatrix EPSG:2056:6, 2.5 metre/px" in printed
    assert "z7: 16 tiles" in printed
    assert server.total == 0 and not (tmp_path / "o").exists()


def test_prepare_carries_the_index_into_its_manifest(server: TileServer, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from aircolor.data.prepare import PrepareOptions, prepare

    tiles = tmp_path / "tiles"
    assert run("--wmts", kvp(server), "--layer", "ortho", "--tile-matrix-set", "LAEA", "--bbox", BERN, "--zoom",
               "10-11", "--out", str(tiles)) == 0
    rows = {r["file"]: r for r in index_rows(tiles).values()}
    prepare(tiles, tmp_path / "data", options=PrepareOptions(size=64, split=(0.5, 0.25, 0.25)))
    manifest = pq.read_table(tmp_path / "data" / "manifest.parquet").to_pylist()
    used = [m for m in manifest if m["status"] == "ok"]
    assert used and {m["source"] for m in manifest} == set(rows)
    for m in used:
        row = rows[m["source"]]
        assert (m["tile"], m["tile_matrix"], m["crs"]) == (row["tile"], row["tile_matrix"], "EPSG:3035")
        assert [m[k] for k in ("minx", "miny", "maxx", "maxy")] == [float(row[k]) for k in ("minx", "miny", "maxx",
                                                                                              "maxy")]
    # A broken index is one clear error, and nothing is written.
    (tiles / T.INDEX_NAME).write_text("tile,crs\n10/1/2,EPSG:3035\n")
    with pytest.raises(UsageError, match="not a tile index"):
        prepare(tiles, tmp_path / "data2", options=PrepareOptions(size=64, split=(0.5, 0.25, 0.25)))
    assert not (tmp_path / "data2").exists()
