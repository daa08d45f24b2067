"""Tile URL templates: XYZ, WMTS KVP and WMTS RESTful (any tile matrix set, with the identifiers of its matrices)."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from aircolor.errors import UsageError



# --------------------------------------------------------------------------------------------------
# URL templates
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_XYZ_NAMES = {"z", "x", "y", "-y"}
_WMTS_NAMES = {"tilematrix": "TileMatrix", "tilerow": "TileRow", "tilecol": "TileCol"}


@dataclass(frozen=True)
class TileTemplate:
    """A parsed tile URL template that knows how to build the URL of one tile.

    ``kind`` is ``"xyz"``, ``"wmts-kvp"`` or ``"wmts-rest"``. For WMTS the row is the tile's ``y`` and the
    column its ``x``; the TileMatrix identifier is ``matrix_ids[z]`` when the template came from a service's
    capabilities, else the zoom rendered through ``matrix_id`` (e.g. ``"EPSG:3857:{z}"``), which is right for
    a Web-Mercator (GoogleMapsCompatible / WebMercatorQuad) matrix set given by hand with ``--url``.
    """

    url: str
    kind: str
    matrix_id: str = "{z}"
    tms: bool = False
    #: A WMTS service's TileMatrix identifiers by zoom index (from its capabilities); overrides ``matrix_id``.
    matrix_ids: tuple[str, ...] | None = None

    def url_for(self, z: int, x: int, y: int) -> str:
        """The URL of XYZ tile ``(z, x, y)``."""
        if self.kind == "xyz":
            row = (2**z - 1 - y) if self.tms else y
            values = {"z": str(z), "x": str(x), "y": str(row), "-y": str(row)}
        else:
            name = self.matrix_ids[z] if self.matrix_ids is not None else self.matrix_id.replace("{z}", str(z))
            matrix = urllib.parse.quote(name, safe=":")
            values = {"tilematrix": matrix, "tilerow": str(y), "tilecol": str(x)}
        return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1).lower() if self.kind != "xyz" else m.group(1)], self.url)


def parse_template(url: str, matrix_id: str = "{z}") -> TileTemplate:
    """Check a ``--url`` template and work out which kind it is.

    Accepted: XYZ (``{z}``, ``{x}``, and ``{y}`` or ``{-y}`` for TMS row order), WMTS KVP (a query with
    ``REQUEST=GetTile`` and ``{TileMatrix}``, ``{TileRow}``, ``{TileCol}``) and WMTS RESTful (the same
    three placeholders in the path). Anything else raises :class:`UsageError` naming ``--url``.
    """
    url = url.strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"--url: {url!r} is not an http(s) URL template; "
            "e.g. --url 'https://tiles.example.org/{z}/{x}/{y}.jpg'"
        )
    if _PLACEHOLDER_RE.sub("", url).count("{") or _PLACEHOLDER_RE.sub("", url).count("}"):
        raise UsageError(f"--url: unbalanced braces in {url!r}; placeholders look like {{z}}, {{x}}, {{y}}")

    found = _PLACEHOLDER_RE.findall(url)
    xyz = [n for n in found if n in _XYZ_NAMES]
    wmts = [n for n in found if n.lower() in _WMTS_NAMES]
    unknown = [n for n in found if n not in _XYZ_NAMES and n.lower() not in _WMTS_NAMES]
    if unknown:
        raise UsageError(
            f"--url: unknown placeholder {{{unknown[0]}}}; supported are {{z}} {{x}} {{y}} {{-y}} (XYZ) "
            "or {TileMatrix} {TileRow} {TileCol} (WMTS); fill in any other value (layer, style) literally"
        )
    if xyz and wmts:
        raise UsageError(
            f"--url: mixes XYZ placeholders ({', '.join('{' + n + '}' for n in xyz)}) with WMTS ones "
            f"({', '.join('{' + n + '}' for n in wmts)}); use one scheme"
        )
    duplicates = sorted({n for n in found if found.count(n) > 1})
    if duplicates:
        raise UsageError(f"--url: placeholder {{{duplicates[0]}}} appears more than once in the template")
    if not xyz and not wmts:
        raise UsageError(
            "--url: the template has no placeholders; use {z}/{x}/{y} (XYZ) or {TileMatrix}/{TileRow}/{TileCol} (WMTS)"
        )
    if xyz:
        return _xyz_template(url, xyz)
    return _wmts_template(url, parsed, wmts, matrix_id)


def _xyz_template(url: str, names: Sequence[str]) -> TileTemplate:
    """Check that an XYZ template has z, x and exactly one of y / -y."""
    missing = [n for n in ("z", "x") if n not in names]
    if "y" not in names and "-y" not in names:
        missing.append("y")
    if missing:
        lacking = ", ".join("{" + n + "}" for n in missing)
        raise UsageError(f"--url: XYZ template lacks {lacking}; it needs {{z}}, {{x}} and {{y}} (or {{-y}} for TMS)")
    if "y" in names and "-y" in names:
        raise UsageError("--url: use either {y} or {-y} (TMS row order), not both")
    return TileTemplate(url=url, kind="xyz", tms="-y" in names)


def _wmts_template(url: str, parsed: urllib.parse.SplitResult, names: Sequence[str], matrix_id: str) -> TileTemplate:
    """Check a WMTS template: all three placeholders, a GetTile request for KVP, a usable --matrix-id."""
    present = {n.lower() for n in names}
    missing = [canon for key, canon in _WMTS_NAMES.items() if key not in present]
    if missing:
        lacking = ", ".join("{" + n + "}" for n in missing)
        raise UsageError(f"--url: WMTS template lacks {lacking}; it needs {{TileMatrix}}, {{TileRow}} and {{TileCol}}")
    if "{z}" not in matrix_id or _PLACEHOLDER_RE.sub("", matrix_id.replace("{z}", "")) != matrix_id.replace("{z}", ""):
        raise UsageError(
            f"--matrix-id: {matrix_id!r} must contain {{z}} and no other placeholder; "
            "e.g. --matrix-id 'EPSG:3857:{z}'"
        )

    query_has_placeholder = bool(_PLACEHOLDER_RE.search(parsed.query))
    params = {k.lower(): v for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)}
    if query_has_placeholder or params.get("service", "").lower() == "wmts":
        if params.get("request", "").lower() != "gettile":
            raise UsageError(
                "--url: a WMTS KVP template must ask for tiles with REQUEST=GetTile; "
                "add &REQUEST=GetTile (plus SERVICE=WMTS, VERSION, LAYER, STYLE, FORMAT, TILEMATRIXSET)"
            )
        if _PLACEHOLDER_RE.search(parsed.path):
            raise UsageError(
                "--url: WMTS placeholders are split between path and query; "
                "put them all in the query (KVP) or all in the path (RESTful)"
            )
        return TileTemplate(url=url, kind="wmts-kvp", matrix_id=matrix_id)
    return TileTemplate(url=url, kind="wmts-rest", matrix_id=matrix_id)


