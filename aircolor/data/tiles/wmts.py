"""A WMTS service from its GetCapabilities: the layer, its image format, its tile matrix set and tile URLs.

OWSLib parses the capabilities; the document itself is downloaded with the same urllib3 client and retry policy
as the tiles. The chosen TileMatrixSet becomes a morecantile tile matrix set (``TileMatrixSet.from_v1``: WMTS 1.0
matrices are OGC TMS 1.0 matrices), with zoom ``i`` the ``i``-th matrix from the coarsest and the WMTS
identifiers kept for the URLs; the layer's TileMatrixSetLimits bound the tiles that are requested. Tiles are
asked for through the service's KVP GetTile endpoint when it has one, else through its RESTful ResourceURL.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import morecantile
import pyproj

from aircolor.data.tiles.grid import TileGrid
from aircolor.data.tiles.templates import TileTemplate, parse_template
from aircolor.errors import UsageError

#: Image formats a tile may come in, most wanted first (JPEG: aerial photos; PNG: lossless but large).
PREFERRED_FORMATS = ("image/jpeg", "image/jpg", "image/png", "image/webp", "image/tiff")
WEB_MERCATOR_CODES = (3857, 900913, 3785, 102100)


@dataclass(frozen=True)
class WmtsLayer:
    """What ``fetch-tiles --wmts`` needs of a service: the grid, the URL template and names for the messages."""

    grid: TileGrid
    template: TileTemplate
    layer: str
    tile_matrix_set: str
    image_format: str


def capabilities_url(url: str) -> str:
    """The GetCapabilities URL of ``url``: kept if it already asks for capabilities (KVP or a RESTful
    ``WMTSCapabilities.xml``), else OWSLib's KVP request on that endpoint."""
    from owslib.wmts import WMTSCapabilitiesReader

    query = {k.lower(): v.lower() for k, v in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)}
    if query.get("request") == "getcapabilities" or urllib.parse.urlsplit(url).path.lower().endswith(".xml"):
        return url
    return WMTSCapabilitiesReader().capabilities_url(url)


def parse_capabilities(url: str, xml: bytes) -> Any:
    """OWSLib's ``WebMapTileService`` for the document; a document that is not WMTS capabilities is one line."""
    from owslib.wmts import WebMapTileService

    try:
        return WebMapTileService(url, xml=xml)
    except Exception as exc:  # OWSLib raises ParseError, ValueError, KeyError, ... for what is not capabilities
        head = " ".join(xml[:200].decode("utf-8", "replace").split())
        raise UsageError(f"--wmts {url}: the answer is not WMTS capabilities ({type(exc).__name__}: {exc}); "
                         f"it starts {head[:80]!r}. Pass the service's GetCapabilities URL") from None


def _layer(service: Any, name: str, url: str) -> Any:
    if name in service.contents:
        return service.contents[name]
    names = sorted(service.contents)
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    raise UsageError(f"--layer {name!r}: the service at {url} has no such layer; its layers: {shown or 'none'}")


def _image_format(layer: Any) -> str:
    offered = [f.lower() for f in layer.formats]
    for fmt in PREFERRED_FORMATS:
        if fmt in offered:
            return layer.formats[offered.index(fmt)]
    raise UsageError(f"--layer {layer.id!r} comes only as {', '.join(layer.formats) or 'no format'}; "
                     "fetch-tiles needs JPEG, PNG, WebP or TIFF tiles")


def _crs(text: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError:
        raise UsageError(f"--tile-matrix-set: its CRS {text!r} is not one that PROJ knows") from None


def _tms_choice(service: Any, layer: Any, wanted: str | None) -> str:
    """The tile matrix set to use: ``wanted``, else the layer's only one, else its Web-Mercator one."""
    linked = list(layer.tilematrixsetlinks)
    described = {i: _crs(service.tilematrixsets[i].crs) for i in linked if i in service.tilematrixsets}
    listing = ", ".join(f"{i} ({c.to_string()})" for i, c in described.items())
    if wanted is not None:
        if wanted not in described:
            raise UsageError(f"--tile-matrix-set {wanted!r}: layer {layer.id!r} is not offered in it; it is in: "
                             f"{listing}")
        return wanted
    if len(described) == 1:
        return next(iter(described))
    mercator = [i for i, c in described.items() if c.to_epsg() in WEB_MERCATOR_CODES]
    if mercator:
        return mercator[0]
    raise UsageError(f"layer {layer.id!r} is offered in several tile matrix sets: {listing}; pick one with "
                     "--tile-matrix-set ID")


def _crs_uri(crs: pyproj.CRS) -> str:
    code = crs.to_epsg()
    if code:
        return f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    auth = crs.to_authority()
    if auth:
        return f"http://www.opengis.net/def/crs/{auth[0]}/0/{auth[1]}"
    raise UsageError(f"--tile-matrix-set: its CRS {crs.name!r} has no authority code; it cannot be used")


def tile_grid(service: Any, layer: Any, tms_id: str) -> TileGrid:
    """The chosen TileMatrixSet as a :class:`TileGrid`, its matrices from the coarsest, with the layer's limits."""
    tms = service.tilematrixsets[tms_id]
    matrices = sorted(tms.tilematrix.values(), key=lambda m: -m.scaledenominator)
    crs = _crs(tms.crs)
    v1 = {"type": "TileMatrixSetType", "title": tms_id, "identifier": tms_id, "supportedCRS": _crs_uri(crs),
          "tileMatrix": [{"type": "TileMatrixType", "identifier": str(i), "scaleDenominator": m.scaledenominator,
                          "topLeftCorner": list(m.topleftcorner), "tileWidth": m.tilewidth,
                          "tileHeight": m.tileheight, "matrixWidth": m.matrixwidth,
                          "matrixHeight": m.matrixheight} for i, m in enumerate(matrices)]}
    ids = tuple(m.identifier for m in matrices)
    link = layer.tilematrixsetlinks[tms_id]
    limits = {}
    for matrix_id, lim in (getattr(link, "tilematrixlimits", None) or {}).items():
        if matrix_id in ids:
            limits[ids.index(matrix_id)] = (lim.mintilecol, lim.maxtilecol, lim.mintilerow, lim.maxtilerow)
    return TileGrid(morecantile.TileMatrixSet.from_v1(v1), f"{tms_id} ({crs.to_string()})", ids, limits)


def _style(layer: Any) -> str:
    for name, style in layer.styles.items():
        if style.get("isDefault"):
            return name
    return next(iter(layer.styles), "default")


def _dimensions(layer: Any) -> dict[str, str]:
    """Default values of the layer's dimensions (e.g. ``Time``), which RESTful templates name."""
    dims = getattr(layer, "dimensions", None) or {}
    return {k: str(v.get("default") or (v.get("values") or [""])[0]) for k, v in dims.items()}


def _kvp_url(service: Any) -> str | None:
    try:
        methods = service.getOperationByName("GetTile").methods
    except KeyError:
        return None
    for method in methods:
        if "rest" not in str(method.get("constraints", "")).lower() and method.get("url"):
            return method["url"]
    return None


def tile_template(service: Any, layer: Any, tms_id: str, fmt: str, ids: Sequence[str]) -> TileTemplate:
    """The URL template of the layer's tiles: KVP GetTile if the service offers it, else its ResourceURL."""
    base = None if service.restonly else _kvp_url(service)
    placeholders = {"tilematrix": "{TileMatrix}", "row": "{TileRow}", "column": "{TileCol}"}
    if base:
        query = service.buildTileRequest(layer=layer.id, style=_style(layer), format=fmt, tilematrixset=tms_id,
                                         **placeholders)
        for name in ("TileMatrix", "TileRow", "TileCol"):
            query = query.replace(urllib.parse.quote("{" + name + "}"), "{" + name + "}")
        base = base.rstrip("?&")
        url = base + ("&" if "?" in base else "?") + query
    else:
        tiles = [r for r in layer.resourceURLs if r.get("resourceType") == "tile"]
        chosen = [r for r in tiles if r.get("format", "").lower() == fmt.lower()] or tiles
        if not chosen:
            raise UsageError(f"layer {layer.id!r}: the service offers neither a KVP GetTile nor a RESTful tile URL")
        url = chosen[0]["template"]
        for key, value in {"TileMatrixSet": tms_id, "Style": _style(layer), **_dimensions(layer)}.items():
            url = url.replace("{" + key + "}", urllib.parse.quote(value, safe=":"))
    return dataclasses.replace(parse_template(url), matrix_ids=tuple(ids))


def open_layer(url: str, xml: bytes, layer_name: str, tms_wanted: str | None) -> WmtsLayer:
    """Everything ``fetch-tiles --wmts URL --layer NAME [--tile-matrix-set ID]`` needs, from the capabilities."""
    service = parse_capabilities(url, xml)
    layer = _layer(service, layer_name, url)
    fmt = _image_format(layer)
    tms_id = _tms_choice(service, layer, tms_wanted)
    grid = tile_grid(service, layer, tms_id)
    return WmtsLayer(grid, tile_template(service, layer, tms_id, fmt, grid.matrix_ids or ()), layer_name, tms_id,
                     fmt)
