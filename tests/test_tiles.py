"""Tests for ``aircolor data fetch-tiles`` against a real local HTTP server serving real aerial tiles."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tile_server.py, whether or not tests/ is a package

from tile_server import Behaviour, TileServer  # noqa: E402

from aircolor.data import tiles as T  # noqa: E402
from aircolor.errors import UsageError  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

# A 4x3 block of zoom-16 tiles over southern Osaka, and the bbox drawn exactly around it.
Z = 16
X0, X1, Y0, Y1 = 57437, 57440, 26046, 26048
BLOCK = [(Z, x, y) for y in range(Y0, Y1 + 1) for x in range(X0, X1 + 1)]


def block_bbox(x0: int = X0, x1: int = X1, y0: int = Y0, y1: int = Y1, z: int = Z) -> tuple[float, float, float, float]:
    west, north = T.tile_to_lonlat(x0, y0, z)
    east, south = T.tile_to_lonlat(x1 + 1, y1 + 1, z)
    return west, south, east, north


def bbox_arg(bbox: tuple[float, float, float, float]) -> str:
    return ",".join(repr(v) for v in bbox)


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def server(tile_server: TileServer) -> TileServer:
    return tile_server


def fetch(
    server: TileServer, tiles: list[tuple[int, int, int]], out: Path, url: str | None = None, **kw: object
) -> T.FetchSummary:
    opts: dict[str, object] = dict(concurrency=4, rate=0, retries=3, backoff=0.01, timeout=5, progress=False)
    opts.update(kw)
    template = T.parse_template(url or server.xyz_url, matrix_id=str(opts.pop("matrix_id", "{z}")))
    return T.fetch_tiles(template, tiles, out, **opts)  # type: ignore[arg-type]


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aircolor data")
    sub = parser.add_subparsers()
    T.register_cli(sub)
    return parser.parse_args(["fetch-tiles", *argv])


def tile_path(out: Path, tile: tuple[int, int, int], ext: str = "jpg") -> Path:
    z, x, y = tile
    return out / str(z) / str(x) / f"{y}.{ext}"


def part_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".part-" in p.name]


def assert_whole_image(path: Path, expected: bytes | None = None) -> None:
    data = path.read_bytes()
    if expected is not None:
        assert data == expected, f"{path} differs from the served bytes"
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.size == (256, 256)


# --------------------------------------------------------------------------------------------------
# 1. Web-Mercator math
# --------------------------------------------------------------------------------------------------


def test_known_tiles() -> None:
    assert T.lonlat_to_tile(0.0, 0.0, 0) == (0, 0)
    assert T.lonlat_to_tile(12.3, -45.6, 0) == (0, 0)
    assert T.lonlat_to_tile(0.0, 0.0, 1) == (1, 1)
    assert T.lonlat_to_tile(-0.001, 0.001, 1) == (0, 0)
    assert T.tile_to_lonlat(0, 0, 0) == pytest.approx((-180.0, T.MAX_LATITUDE))
    assert T.tile_to_lonlat(1, 1, 1) == pytest.approx((0.0, 0.0), abs=1e-12)
    # The poles and the antimeridian fall into the edge tiles instead of off the grid.
    assert T.lonlat_to_tile(180.0, -90.0, 3) == (7, 7)
    assert T.lonlat_to_tile(-180.0, 90.0, 3) == (0, 0)


def test_gsi_osaka_block() -> None:
    """GSI z18 tiles x229749..229755, y104184..104193: southern Osaka city.

    The data README gives "about 34.595-34.606°N, 135.516-135.522°E"; the exact block is
    34.5948-34.6061°N, 135.5122-135.5219°E, so the README's western bound is off by 0.004°.
    """
    z = 18
    west, north = T.tile_to_lonlat(229749, 104184, z)
    east, south = T.tile_to_lonlat(229755 + 1, 104193 + 1, z)
    assert 34.594 < south < 34.596 and 34.605 < north < 34.607
    assert 135.512 < west < 135.513 and 135.521 < east < 135.522
    block = {(z, x, y) for x in range(229749, 229756) for y in range(104184, 104194)}
    assert set(T.tiles_in_bbox(west, south, east, north, z)) == block
    assert T.count_tiles_in_bbox(west, south, east, north, z) == 70
    # A point inside the stated area lies in the block.
    assert (z, *T.lonlat_to_tile(135.518, 34.600, z)) in block
    for _, x, y in block:
        w, n = T.tile_to_lonlat(x, y, z)
        e, s = T.tile_to_lonlat(x + 1, y + 1, z)
        assert T.lonlat_to_tile((w + e) / 2, (n + s) / 2, z) == (x, y)


def test_openaerialmap_kampala_tile() -> None:
    """OAM-1238424-1046545-21 lies in Kampala at about 0.348-0.352°N, 32.59-32.60°E."""
    x, y, z = 1238424, 1046545, 21
    west, north = T.tile_to_lonlat(x, y, z)
    east, south = T.tile_to_lonlat(x + 1, y + 1, z)
    assert 0.348 <= south < north <= 0.352
    assert 32.589 <= west < east <= 32.600
    assert T.lonlat_to_tile((west + east) / 2, (north + south) / 2, z) == (x, y)
    # Its zoom-19 parent holds the same point.
    assert T.lonlat_to_tile((west + east) / 2, (north + south) / 2, 19) == (x >> 2, y >> 2)


def test_round_trip_random_tiles() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        z = rng.randint(0, 22)
        x, y = rng.randrange(2**z), rng.randrange(2**z)
        west, south, east, north = T.WEB_MERCATOR.lonlat_bounds((z, x, y))
        assert T.lonlat_to_tile((west + east) / 2, (south + north) / 2, z) == (x, y)
        nw_lon, nw_lat = T.tile_to_lonlat(x, y, z)
        eps = 1e-3 / 2**z
        assert T.lonlat_to_tile(nw_lon + eps, nw_lat - eps * 0.5, z) == (x, y)


@pytest.mark.parametrize(
    ("bbox", "z", "count"),
    [
        ((-180, -90, 180, 90), 0, 1),
        ((-180, -90, 180, 90), 2, 16),  # latitudes clamped to the Mercator limit
        ((0.0001, 0.0001, 0.0002, 0.0002), 15, 1),
        ((-0.0001, -0.0001, 0.0001, 0.0001), 15, 4),  # straddles the origin
        (block_bbox(), Z, 12),  # edges exactly on tile boundaries: no extra row or column
        (block_bbox(57000, 57099, 26000, 26049), Z, 100 * 50),
    ],
)
def test_bbox_counts(bbox: tuple[float, float, float, float], z: int, count: int) -> None:
    tiles = list(T.tiles_in_bbox(*bbox, z))
    assert len(tiles) == count == T.count_tiles_in_bbox(*bbox, z)
    assert len(set(tiles)) == count
    assert all(t[0] == z for t in tiles)


def test_bbox_block_is_the_block() -> None:
    assert list(T.tiles_in_bbox(*block_bbox(), Z)) == BLOCK


@pytest.mark.parametrize(
    ("bbox", "words"),
    [
        ((10, 0, 5, 1), ["--bbox", "antimeridian"]),
        ((170, 0, -170, 1), ["--bbox", "antimeridian"]),
        ((0, 5, 1, 5), ["--bbox", "south"]),
        ((-181, 0, 1, 1), ["--bbox", "-180..180"]),
        ((0, -91, 1, 1), ["--bbox", "-90..90"]),
        ((0, 86, 1, 89), ["--bbox", "Web Mercator"]),
        ((0, 0, math.nan, 1), ["--bbox", "finite"]),
    ],
)
def test_bbox_rejected(bbox: tuple[float, float, float, float], words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        T.tiles_in_bbox(*bbox, 10)  # raises on the call, not on first iteration
    for w in words:
        assert w in str(err.value)


def test_parse_bbox_and_zooms() -> None:
    assert T.parse_bbox(" 135.5, 34.59,135.53,34.61 ") == (135.5, 34.59, 135.53, 34.61)
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,4,5", ""):
        with pytest.raises(UsageError, match="--bbox"):
            T.parse_bbox(bad)
    assert T.parse_zooms("15-16") == [15, 16]
    assert T.parse_zooms("16") == [16]
    assert T.parse_zooms("17,15") == [15, 17]
    for bad in ("16-15", "abc", "", "30", "-1", "15-"):
        with pytest.raises(UsageError, match="--zoom"):
            T.parse_zooms(bad)


# --------------------------------------------------------------------------------------------------
# 2. URL templates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "matrix_id", "kind", "expected"),
    [
        ("https://t.example/ortho/{z}/{x}/{y}.jpg", "{z}", "xyz", "https://t.example/ortho/16/57437/26046.jpg"),
        ("https://t.example/tms/{z}/{x}/{-y}.png", "{z}", "xyz", f"https://t.example/tms/16/57437/{2**16 - 26047}.png"),
        ("https://t.example/a?x={x}&y={y}&z={z}", "{z}", "xyz", "https://t.example/a?x=57437&y=26046&z=16"),
        (
            "https://t.example/wmts?service=WMTS&request=GetTile&version=1.0.0&layer=ortho&style=default"
            "&format=image/jpeg&tilematrixset=PM&TileMatrix={TileMatrix}&TileRow={TileRow}&TileCol={TileCol}",
            "{z}",
            "wmts-kvp",
            "https://t.example/wmts?service=WMTS&request=GetTile&version=1.0.0&layer=ortho&style=default"
            "&format=image/jpeg&tilematrixset=PM&TileMatrix=16&TileRow=26046&TileCol=57437",
        ),
        (
            "https://t.example/wmts?SERVICE=WMTS&REQUEST=GetTile&TILEMATRIXSET=EPSG:3857"
            "&TILEMATRIX={TileMatrix}&TILEROW={TileRow}&TILECOL={TileCol}",
            "EPSG:3857:{z}",
            "wmts-kvp",
            "https://t.example/wmts?SERVICE=WMTS&REQUEST=GetTile&TILEMATRIXSET=EPSG:3857"
            "&TILEMATRIX=EPSG:3857:16&TILEROW=26046&TILECOL=57437",
        ),
        (
            "https://t.example/wmts/1.0.0/ortho/default/GoogleMapsCompatible/{TileMatrix}/{TileRow}/{TileCol}.jpg",
            "{z}",
            "wmts-rest",
            "https://t.example/wmts/1.0.0/ortho/default/GoogleMapsCompatible/16/26046/57437.jpg",
        ),
    ],
)
def test_template_urls(url: str, matrix_id: str, kind: str, expected: str) -> None:
    template = T.parse_template(url, matrix_id=matrix_id)
    assert template.kind == kind
    assert template.url_for(16, 57437, 26046) == expected


KVP_TAIL = "TILEMATRIX={TileMatrix}&TILEROW={TileRow}&TILECOL={TileCol}"


@pytest.mark.parametrize(
    ("url", "matrix_id", "words"),
    [
        ("https://t.example/{z}/{x}/{y}/{s}.jpg", "{z}", ["--url", "{s}"]),
        ("https://t.example/{z}/{x}.jpg", "{z}", ["--url", "{y}"]),
        ("https://t.example/{z}/{x}/{y}/{-y}.jpg", "{z}", ["--url", "{-y}"]),
        ("https://t.example/{z}/{x}/{y}/{x}.jpg", "{z}", ["--url", "more than once"]),
        ("https://t.example/{z}/{TileRow}/{TileCol}.jpg", "{z}", ["--url", "mixes"]),
        ("https://t.example/{TileMatrix}/{TileRow}.jpg", "{z}", ["--url", "{TileCol}"]),
        ("https://t.example/wmts?SERVICE=WMTS&" + KVP_TAIL, "{z}", ["--url", "REQUEST=GetTile"]),
        ("https://t.example/wmts?REQUEST=GetCapabilities&" + KVP_TAIL, "{z}", ["--url", "REQUEST=GetTile"]),
        ("https://t.example/ortho.jpg", "{z}", ["--url", "no placeholders"]),
        ("t.example/{z}/{x}/{y}.jpg", "{z}", ["--url", "http"]),
        ("https://t.example/{z}/{x}/{y.jpg", "{z}", ["--url", "braces"]),
        ("https://t.example/{TileMatrix}/{TileRow}/{TileCol}.jpg", "EPSG:3857", ["--matrix-id", "{z}"]),
        ("https://t.example/{TileMatrix}/{TileRow}/{TileCol}.jpg", "{z}:{x}", ["--matrix-id"]),
    ],
)
def test_template_errors(url: str, matrix_id: str, words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        T.parse_template(url, matrix_id=matrix_id)
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message


# --------------------------------------------------------------------------------------------------
# 3. Fetching
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xyz", "kvp", "rest"])
def test_fetch_all_tiles(server: TileServer, tmp_path: Path, kind: str) -> None:
    url = {"xyz": server.xyz_url, "kvp": server.kvp_url, "rest": server.rest_url}[kind]
    matrix_id = "EPSG:3857:{z}" if kind == "kvp" else "{z}"
    summary = fetch(server, BLOCK, tmp_path, url=url, matrix_id=matrix_id, bbox=block_bbox())
    assert len(summary.fetched) == len(BLOCK) and not summary.failed and not summary.missing and not summary.skipped
    assert summary.ok and summary.exit_code == 0
    total = 0
    for tile in BLOCK:
        expected = server.body_for(tile)
        assert_whole_image(tile_path(tmp_path, tile), expected)
        assert server.counts[tile] == 1
        total += len(expected)
    assert summary.bytes == total
    assert not part_files(tmp_path)
    if kind == "kvp":
        assert all("TILEMATRIX=EPSG:3857:16" in p for p in server.path_counts)
    report = json.loads((tmp_path / "fetch-summary.json").read_text())
    assert report["counts"]["fetched"] == len(BLOCK) and report["counts"]["failed"] == 0
    assert report["template"] == url and report["zooms"] == [Z]
    assert report["bbox"] == pytest.approx(list(block_bbox()))
    assert "fetched 12" in summary.summary_line() and "failed 0" in summary.summary_line()


def test_concurrency_rate_and_user_agent(server: TileServer, tmp_path: Path) -> None:
    server.delay = 0.05
    fetch(server, BLOCK, tmp_path, concurrency=3)
    assert 2 <= server.max_in_flight <= 3
    assert all(ua.startswith("aircolor/") and "github.com/aircolor" in ua for ua in server.user_agents)
    server.reset()
    fetch(server, BLOCK[:2], tmp_path / "ua", user_agent="my-research-bot/1.0 (me@example.org)")
    assert server.user_agents == ["my-research-bot/1.0 (me@example.org)"] * 2


def test_rate_limiter_paces_requests() -> None:
    limiter = T.RateLimiter(50.0)
    start = time.monotonic()
    for _ in range(11):
        assert limiter.acquire()
    assert time.monotonic() - start >= 0.19  # 10 intervals of 20 ms
    unlimited = T.RateLimiter(0)
    start = time.monotonic()
    for _ in range(1000):
        unlimited.acquire()
    assert time.monotonic() - start < 0.5


def test_png_tile_saved_as_png(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("png")
    summary = fetch(server, [tile], tmp_path)
    assert summary.fetched == [tile]
    assert not tile_path(tmp_path, tile, "jpg").exists()
    assert_whole_image(tile_path(tmp_path, tile, "png"), server.png_for(tile))
    # ... and a rerun sees the .png as done.
    again = fetch(server, [tile], tmp_path)
    assert again.skipped == [tile] and server.counts[tile] == 1


def test_resume_skips_present_tiles_and_removes_stale_parts(server: TileServer, tmp_path: Path) -> None:
    fetch(server, BLOCK[:5], tmp_path)
    stale = tile_path(tmp_path, BLOCK[7]).parent / f".{BLOCK[7][2]}.part-0123abcd"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\xff\xd8half a jpeg")
    summary = fetch(server, BLOCK, tmp_path)
    assert sorted(summary.skipped) == sorted(BLOCK[:5])
    assert len(summary.fetched) == len(BLOCK) - 5
    assert summary.stale_parts_removed == 1 and not part_files(tmp_path)
    assert all(server.counts[t] == 1 for t in BLOCK)


# --------------------------------------------------------------------------------------------------
# 4. Kill and resume, in a real subprocess
# --------------------------------------------------------------------------------------------------


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _start_cli(server: TileServer, out: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    # Ctrl-C as from a shell, whatever this process's own SIGINT disposition (an ignored SIGINT is inherited).
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from aircolor.data.tiles import main; sys.exit(main(sys.argv[1:]))")
    argv = ["--url", server.xyz_url, "--bbox", bbox_arg(block_bbox()), "--zoom", str(Z), "--out", str(out),
            "--rate", "0", "--backoff", "0.01", *extra]
    with log.open("wb") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-c", code, *argv], env=_subprocess_env(), stdout=sink,
                                stderr=subprocess.STDOUT)


def _wait_for_tiles(out: Path, n: int, proc: subprocess.Popen[bytes], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while len(list(out.rglob("*.jpg"))) < n:
        assert proc.poll() is None, "the fetch ended before it could be interrupted"
        assert time.monotonic() < deadline, "no tiles appeared"
        time.sleep(0.01)


def _wait_for_requests(server: TileServer, n: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while server.total < n:
        assert time.monotonic() < deadline, f"the server saw {server.total} requests, expected {n}"
        time.sleep(0.01)


def test_sigkill_then_resume(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    server.hold(after=5)  # five tiles get answered, the sixth and seventh requests hang
    proc = _start_cli(server, out, tmp_path / "run1.log", "--concurrency", "2")
    _wait_for_tiles(out, 5, proc)
    _wait_for_requests(server, 7)  # two requests in flight when the process dies
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    server.release()

    # Whatever has a tile name after SIGKILL is a whole, valid tile.
    complete = {}
    for path in out.rglob("*.jpg"):
        tile = (int(path.parts[-3]), int(path.parts[-2]), int(path.stem))
        assert_whole_image(path, server.body_for(tile))
        complete[tile] = path
    assert len(complete) == 5
    before = dict(server.counts)
    assert sum(before.values()) == 7  # the two hung requests were made, and their tiles are not on disk

    rerun = _start_cli(server, out, tmp_path / "run2.log", "--concurrency", "4")
    assert rerun.wait(30) == 0, (tmp_path / "run2.log").read_text()
    for tile in BLOCK:
        assert_whole_image(tile_path(out, tile), server.body_for(tile))
    for tile in complete:
        assert server.counts[tile] == before[tile] == 1, f"{tile} was downloaded again"
    assert not part_files(out)
    report = json.loads((out / "fetch-summary.json").read_text())
    assert report["counts"]["skipped"] == len(complete)
    assert report["counts"]["fetched"] == len(BLOCK) - len(complete)
    assert report["interrupted"] is False
    log = (tmp_path / "run2.log").read_text()
    assert f"skipped {len(complete)}" in log


def test_sigint_writes_summary_and_exits_130(server: TileServer, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    server.hold(after=3)
    proc = _start_cli(server, out, tmp_path / "run.log", "--concurrency", "2")
    _wait_for_tiles(out, 3, proc)
    _wait_for_requests(server, 5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    server.release()  # the two requests in flight complete; nothing new starts
    assert proc.wait(20) == 130, (tmp_path / "run.log").read_text()
    assert sum(server.counts.values()) == 5
    report = json.loads((out / "fetch-summary.json").read_text())
    assert report["interrupted"] is True
    assert report["counts"]["fetched"] == len(list(out.rglob("*.jpg")))
    assert not part_files(out)
    assert "rerun the same command to resume" in (tmp_path / "run.log").read_text()


def test_keyboard_interrupt_in_process(server: TileServer, tmp_path: Path) -> None:
    def tiles_then_ctrl_c() -> Iterator[tuple[int, int, int]]:
        yield from BLOCK[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(server, tiles_then_ctrl_c(), tmp_path)  # type: ignore[arg-type]
    report = json.loads((tmp_path / "fetch-summary.json").read_text())
    assert report["interrupted"] is True
    assert not part_files(tmp_path)
    for path in tmp_path.rglob("*.jpg"):
        assert_whole_image(path)


# --------------------------------------------------------------------------------------------------
# 5. Server misbehaviour
# --------------------------------------------------------------------------------------------------


def test_retry_after_500s(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("500", times=3)
    summary = fetch(server, [tile], tmp_path, retries=3)
    assert summary.fetched == [tile] and server.counts[tile] == 4
    assert_whole_image(tile_path(tmp_path, tile), server.body_for(tile))


def test_persistent_500_fails_after_retries(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("500")
    summary = fetch(server, [tile], tmp_path, retries=2)
    assert server.counts[tile] == 3
    [(failed_tile, url, reason)] = summary.failed
    assert failed_tile == tile and url.endswith(f"/{tile[0]}/{tile[1]}/{tile[2]}.jpg")
    assert "HTTP 500" in reason and "3 attempts" in reason
    assert summary.exit_code == 1
    assert not tile_path(tmp_path, tile).exists()


def test_429_with_retry_after(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("429", times=1)
    start = time.monotonic()
    summary = fetch(server, [tile], tmp_path, backoff=5.0)  # Retry-After: 0 wins over the 5 s backoff
    assert time.monotonic() - start < 2.0
    assert summary.fetched == [tile] and server.counts[tile] == 2


def test_retry_after_header_parsing() -> None:
    retry = T.PacedRetry(total=3)
    assert retry.parse_retry_after("3") == 3.0
    assert retry.parse_retry_after("0") == 0.0
    assert retry.parse_retry_after("999999") == T.RETRY_AFTER_CAP_S
    assert retry.parse_retry_after("soon") < 0  # ignored: the backoff applies
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_404_and_204_are_missing_not_failed(server: TileServer, tmp_path: Path) -> None:
    server.behaviours[BLOCK[0]] = Behaviour("404")
    server.behaviours[BLOCK[1]] = Behaviour("204")
    summary = fetch(server, BLOCK[:4], tmp_path)
    assert sorted(summary.missing) == sorted(BLOCK[:2])
    assert len(summary.fetched) == 2 and summary.exit_code == 0
    assert server.counts[BLOCK[0]] == server.counts[BLOCK[1]] == 1  # no retry
    assert not tile_path(tmp_path, BLOCK[0]).exists() and not tile_path(tmp_path, BLOCK[1]).exists()
    report = json.loads((tmp_path / "fetch-summary.json").read_text())
    assert sorted(report["missing"]) == sorted(f"{z}/{x}/{y}" for z, x, y in BLOCK[:2])


def test_truncated_body_is_retried(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("truncated", times=2)
    summary = fetch(server, [tile], tmp_path)
    assert summary.fetched == [tile] and server.counts[tile] == 3
    assert_whole_image(tile_path(tmp_path, tile), server.body_for(tile))


@pytest.mark.parametrize(("kind", "reason"), [("truncated", "truncated"), ("corrupt", "decodable")])
def test_always_bad_body_is_never_kept(server: TileServer, tmp_path: Path, kind: str, reason: str) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour(kind)
    summary = fetch(server, [tile], tmp_path, retries=2)
    assert server.counts[tile] == 3
    [(_, _, why)] = summary.failed
    assert reason in why
    assert not list(tmp_path.rglob("*.jpg")) and not part_files(tmp_path)


@pytest.mark.parametrize(
    ("kind", "words"),
    [("html", ["HTML", "Quota exceeded"]), ("xml", ["XML", "TileRow is out of range"]), ("403", ["HTTP 403"])],
)
def test_error_bodies_fail_without_retry(server: TileServer, tmp_path: Path, kind: str, words: list[str]) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour(kind)
    summary = fetch(server, [tile], tmp_path)
    assert server.counts[tile] == 1
    [(_, _, why)] = summary.failed
    for w in words:
        assert w in why
    assert not list(tmp_path.rglob("*.jpg"))


def test_timeout_is_retried(server: TileServer, tmp_path: Path) -> None:
    tile = BLOCK[0]
    server.behaviours[tile] = Behaviour("slow", times=1, delay=0.6)
    summary = fetch(server, [tile], tmp_path, timeout=0.2)
    assert summary.fetched == [tile] and server.counts[tile] == 2


def test_connection_refused_fails_with_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    template = T.parse_template(f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.jpg")
    summary = T.fetch_tiles(
        template, [BLOCK[0]], tmp_path, concurrency=1, rate=0, retries=1, backoff=0.01, timeout=2, progress=False
    )
    [(_, _, why)] = summary.failed
    assert "connection" in why


def test_cli_exit_codes(server: TileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server.behaviours[BLOCK[0]] = Behaviour("404")
    base = ["--url", server.xyz_url, "--bbox", bbox_arg(block_bbox()), "--zoom", str(Z),
            "--rate", "0", "--backoff", "0.01", "--retries", "1"]
    assert T._cli_fetch(cli_args(*base, "--out", str(tmp_path / "a"))) == 0
    assert "missing 1" in capsys.readouterr().out

    server.behaviours[BLOCK[1]] = Behaviour("500")
    assert T._cli_fetch(cli_args(*base, "--out", str(tmp_path / "b"))) == 1
    printed = capsys.readouterr().out
    assert "failed 1" in printed and "HTTP 500" in printed


# --------------------------------------------------------------------------------------------------
# 6. CLI input errors and --dry-run
# --------------------------------------------------------------------------------------------------

GOOD = ["--url", "https://t.example/{z}/{x}/{y}.jpg", "--bbox", "135.50,34.59,135.53,34.61", "--zoom", "15-16"]


@pytest.mark.parametrize(
    ("override", "option"),
    [
        ({"--bbox": "135.53,34.59,135.50,34.61"}, "--bbox"),
        ({"--bbox": "135.50,34.59"}, "--bbox"),
        ({"--zoom": "16-15"}, "--zoom"),
        ({"--zoom": "z16"}, "--zoom"),
        ({"--url": "https://t.example/{z}/{x}/{row}.jpg"}, "--url"),
        ({"--url": "https://t.example/wmts?SERVICE=WMTS&" + KVP_TAIL}, "--url"),
        ({"--bbox": "130,30,140,40", "--zoom": "16"}, "--max-tiles"),
        ({"--concurrency": "0"}, "--concurrency"),
        ({"--rate": "-1"}, "--rate"),
        ({"--timeout": "0"}, "--timeout"),
    ],
)
def test_cli_bad_input(tmp_path: Path, override: dict[str, str], option: str) -> None:
    opts = dict(zip(GOOD[::2], GOOD[1::2]))
    opts.update(override)
    argv = [item for pair in opts.items() for item in pair] + ["--out", str(tmp_path / "out")]
    with pytest.raises(UsageError) as err:
        T._cli_fetch(cli_args(*argv))
    assert option in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing is created before the input is known to be good


def test_cli_unwritable_out(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(UsageError, match="--out"):
        T._cli_fetch(cli_args(*GOOD, "--out", str(not_a_dir)))
    with pytest.raises(UsageError, match="--out"):
        T._cli_fetch(cli_args(*GOOD, "--out", str(not_a_dir / "sub")))


def test_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bbox = bbox_arg(block_bbox())
    out = str(tmp_path / "o")
    code = T._cli_fetch(cli_args(*GOOD[:2], "--bbox", bbox, "--zoom", "15-16", "--out", out, "--dry-run"))
    assert code == 0
    printed = capsys.readouterr().out
    assert "z15:" in printed and "z16: 12 tiles" in printed
    assert not (tmp_path / "o").exists()
    # Over the limit, a dry run still answers, and says a real run would refuse.
    code = T._cli_fetch(cli_args(*GOOD[:2], "--bbox", "130,30,140,40", "--zoom", "16", "--out", out, "--dry-run"))
    assert code == 0 and "--max-tiles" in capsys.readouterr().out


def test_main_prints_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["--url", "https://t.example/{z}/{x}.jpg", "--bbox", "0,0,1,1", "--zoom", "3", "--out", str(tmp_path)]
    code = T.main(argv)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aircolor: error: --url") and "\n" not in err


def test_help_has_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        T.main(["--help"])
    out = capsys.readouterr().out
    assert "aircolor data fetch-tiles" in out and "{TileMatrix}" in out
