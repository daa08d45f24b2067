"""WMTS 1.0.0 GetCapabilities documents for the test tile server, built from morecantile tile matrix sets.

Three sets: Web Mercator (``WebMercatorQuad``, identifiers ``WebMercatorQuad:{z}``), ETRS89-LAEA Europe
(``EPSG:3035``, northing first: its TopLeftCorner is written in the CRS's axis order, as WMTS says) and a
Swiss LV95 grid (``EPSG:2056``) whose resolutions are not powers of two, like swisstopo's. The layer ``ortho``
is offered in all three, JPEG and PNG, with TileMatrixSetLimits on the Swiss set.
"""

from __future__ import annotations

import math

import morecantile

SWISS_ORIGIN = (2420000.0, 1350000.0)       # LV95 top-left (easting, northing)
SWISS_EXTENT = (480000.0, 320000.0)          # metres east and south of the origin
SWISS_RESOLUTIONS = (250.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.5, 2.0, 1.5, 1.0, 0.5)
#: TileMatrixSetLimits of the Swiss set at zoom 7 (2 m/px): the columns and rows the layer has there.
SWISS_LIMITS_Z7 = (350, 353, 292, 295)


def swiss_tms() -> morecantile.TileMatrixSet:
    """The Swiss grid as an OGC TMS 2.0 set (cell sizes given exactly, not through scale denominators)."""
    matrices = []
    for i, res in enumerate(SWISS_RESOLUTIONS):
        matrices.append({"id": str(i), "scaleDenominator": res / 0.00028, "cellSize": res,
                         "pointOfOrigin": list(SWISS_ORIGIN), "tileWidth": 256, "tileHeight": 256,
                         "matrixWidth": math.ceil(SWISS_EXTENT[0] / (res * 256)),
                         "matrixHeight": math.ceil(SWISS_EXTENT[1] / (res * 256))})
    return morecantile.TileMatrixSet(id="LV95", crs="http://www.opengis.net/def/crs/EPSG/0/2056",
                                     tileMatrices=matrices)


def tile_matrix_sets() -> dict[str, tuple[morecantile.TileMatrixSet, str, str]]:
    """``{id: (tms, SupportedCRS, identifier prefix)}`` of the sets in the capabilities."""
    return {
        "WebMercatorQuad": (morecantile.tms.get("WebMercatorQuad"), "urn:ogc:def:crs:EPSG::3857", "WebMercatorQuad:"),
        "LAEA": (morecantile.tms.get("EuropeanETRS89_LAEAQuad"), "urn:ogc:def:crs:EPSG::3035", "LAEA:"),
        "LV95": (swiss_tms(), "urn:ogc:def:crs:EPSG::2056", "EPSG:2056:"),
    }


def _matrix_xml(m: morecantile.models.TileMatrix, identifier: str) -> str:
    corner = " ".join(repr(float(v)) for v in m.pointOfOrigin)  # already in the CRS's axis order
    return (f"<TileMatrix><ows:Identifier>{identifier}</ows:Identifier>"
            f"<ScaleDenominator>{m.scaleDenominator!r}</ScaleDenominator><TopLeftCorner>{corner}</TopLeftCorner>"
            f"<TileWidth>{m.tileWidth}</TileWidth><TileHeight>{m.tileHeight}</TileHeight>"
            f"<MatrixWidth>{m.matrixWidth}</MatrixWidth><MatrixHeight>{m.matrixHeight}</MatrixHeight></TileMatrix>")


def _set_xml(set_id: str, tms: morecantile.TileMatrixSet, crs: str, prefix: str, max_zoom: int) -> str:
    matrices = "".join(_matrix_xml(tms.matrix(z), f"{prefix}{z}") for z in range(max_zoom + 1))
    return (f"<TileMatrixSet><ows:Identifier>{set_id}</ows:Identifier><ows:SupportedCRS>{crs}</ows:SupportedCRS>"
            f"{matrices}</TileMatrixSet>")


def _links() -> str:
    c0, c1, r0, r1 = SWISS_LIMITS_Z7
    limits = (f"<TileMatrixSetLimits><TileMatrixLimits><TileMatrix>EPSG:2056:7</TileMatrix>"
              f"<MinTileRow>{r0}</MinTileRow><MaxTileRow>{r1}</MaxTileRow><MinTileCol>{c0}</MinTileCol>"
              f"<MaxTileCol>{c1}</MaxTileCol></TileMatrixLimits></TileMatrixSetLimits>")
    return ("<TileMatrixSetLink><TileMatrixSet>WebMercatorQuad</TileMatrixSet></TileMatrixSetLink>"
            "<TileMatrixSetLink><TileMatrixSet>LAEA</TileMatrixSet></TileMatrixSetLink>"
            f"<TileMatrixSetLink><TileMatrixSet>LV95</TileMatrixSet>{limits}</TileMatrixSetLink>")


def capabilities(base: str, kvp: bool, max_zoom: int = 18) -> bytes:
    """The document; ``kvp``: GetTile through ``{base}/wmts`` KVP, else only RESTful ResourceURLs."""
    operations = ""
    if kvp:
        operations = (
            '<ows:OperationsMetadata><ows:Operation name="GetTile"><ows:DCP><ows:HTTP>'
            f'<ows:Get xlink:href="{base}/wmts?"><ows:Constraint name="GetEncoding"><ows:AllowedValues>'
            "<ows:Value>KVP</ows:Value></ows:AllowedValues></ows:Constraint></ows:Get>"
            "</ows:HTTP></ows:DCP></ows:Operation></ows:OperationsMetadata>")
    sets = "".join(_set_xml(i, tms, crs, prefix, min(max_zoom, len(tms.tileMatrices) - 1))
                   for i, (tms, crs, prefix) in tile_matrix_sets().items())
    layer = (
        "<Layer><ows:Title>Orthophoto</ows:Title><ows:Identifier>ortho</ows:Identifier>"
        '<Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>'
        "<Format>image/png</Format><Format>image/jpeg</Format>"
        f"{_links()}"
        f'<ResourceURL format="image/jpeg" resourceType="tile" template="{base}/rest/ortho/{{Style}}/'
        '{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.jpg"/></Layer>'
        "<Layer><ows:Title>Roads</ows:Title><ows:Identifier>roads</ows:Identifier>"
        '<Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style><Format>image/svg+xml</Format>'
        "<TileMatrixSetLink><TileMatrixSet>WebMercatorQuad</TileMatrixSet></TileMatrixSetLink></Layer>")
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">'
        "<ows:ServiceIdentification><ows:Title>aircolor test WMTS</ows:Title>"
        "<ows:ServiceType>OGC WMTS</ows:ServiceType><ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>"
        f"</ows:ServiceIdentification>{operations}<Contents>{layer}{sets}</Contents></Capabilities>")
    return doc.encode("utf-8")
