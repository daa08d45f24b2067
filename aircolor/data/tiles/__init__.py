"""``aircolor data fetch-tiles``: a resumable downloader for web-map tiles.

Modern color orthophoto tiles (zoom 15-16, 256x256) are the ground truth that the colorization models
learn from. Tile servers are slow, rate limited and flaky, and a download of tens of thousands of tiles is
often interrupted, so this module is built around three promises:

* **No partial files.** A tile is downloaded into memory, checked (status, length, a full Pillow decode)
  and only then written to a temporary name, fsynced and renamed into place. A file named
  ``OUT/{z}/{x}/{y}.{ext}`` is therefore always a complete image.
* **Resumable.** Because of the above, a tile whose file exists is done: a rerun skips it without a
  request, and removes the ``.part-`` leftovers of a killed run.
* **Polite.** Bounded concurrency, a global rate limit, urllib3's retries with exponential backoff and
  jitter, ``Retry-After`` honoured (and slowing the whole run), and an honest ``User-Agent``.

Sources: XYZ / WMTS URL templates on the Web-Mercator grid, or any WMTS service through its GetCapabilities
(``wmts.py``), on any tile matrix set (``grid.py``: morecantile). Each tile can carry its georeferencing
(``georef.py``), and ``tiles-index.csv`` lists every tile with its bounds and CRS (``summary.py``).

Run it standalone with ``python -m aircolor.data.tiles --url ... --bbox ... --zoom ... --out ...``.
"""

from aircolor.data.tiles.cli import _cli_fetch, main, register_cli
from aircolor.data.tiles.fetch import TileOutput, existing_tile, fetch_tiles, remove_stale_parts
from aircolor.data.tiles.grid import (MAX_LATITUDE, MAX_ZOOM, WEB_MERCATOR, TileGrid, TileKey, count_tiles_in_bbox,
                                      lonlat_to_tile, parse_bbox, parse_zooms, tile_to_lonlat, tiles_in_bbox,
                                      validate_bbox)
from aircolor.data.tiles.http import RETRY_AFTER_CAP_S, PacedRetry, RateLimiter, default_user_agent
from aircolor.data.tiles.summary import INDEX_NAME, SUMMARY_NAME, FetchSummary, read_index, write_summary
from aircolor.data.tiles.templates import TileTemplate, parse_template

__all__ = ["INDEX_NAME", "MAX_LATITUDE", "MAX_ZOOM", "RETRY_AFTER_CAP_S", "SUMMARY_NAME", "WEB_MERCATOR",
           "FetchSummary", "PacedRetry", "RateLimiter", "TileGrid", "TileKey", "TileOutput", "TileTemplate",
           "count_tiles_in_bbox", "default_user_agent", "existing_tile", "fetch_tiles", "lonlat_to_tile", "main",
           "parse_bbox", "parse_template", "parse_zooms", "read_index", "register_cli", "remove_stale_parts",
           "tile_to_lonlat", "tiles_in_bbox", "validate_bbox", "write_summary", "_cli_fetch"]
