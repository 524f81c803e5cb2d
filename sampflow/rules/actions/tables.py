"""Table-aware actions: ``point_at``, ``highlight_row``, ``select_rows``, and the registry of
tables the engine has seen loaded.

The registry learns ``table-id`` and ``url`` from every ``table.load.*`` message the engine
receives or sends. To point at a row it reads the table with astropy (once, cached, in a worker
thread) and finds the position columns by UCD (``pos.eq.ra`` / ``pos.eq.dec``, with or without
``;meta.main``), else by the usual names (``ra``/``dec``, ``RAJ2000``/``DEJ2000``,
``RA_ICRS``/``DE_ICRS``, ...). Sexagesimal strings and non-degree units are converted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any

from .. import astropy_warnings
from ..errors import ActionError
from ..events import SampMessage
from ..expr import render_value
from ..model import HighlightRow, PointAt, SelectRows
from .base import ActionContext

__all__ = ["TableRegistry", "highlight_row", "parse_angle", "point_at", "select_rows",
           "url_to_path"]

log = logging.getLogger("sampflow.rules")

_RA_NAMES = ("ra", "raj2000", "ra_icrs", "_raj2000", "radeg", "ra_deg", "ra2000", "alpha",
             "ra_j2000", "rightascension")
_DEC_NAMES = ("dec", "dej2000", "de_icrs", "_dej2000", "dedeg", "dec_deg", "decj2000", "delta",
              "de", "dec2000", "dec_j2000", "declination", "decl")


def url_to_path(url: str) -> str:
    """The local path of a ``file:`` URL (``file:///x`` or ``file://localhost/x``)."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme != "file":
        return url
    if parts.netloc not in ("", "localhost"):
        raise ActionError(f"not a local file URL: {url}")
    return urllib.request.url2pathname(parts.path)


def parse_angle(value: Any, *, hours: bool) -> float:
    """Degrees from a number or a sexagesimal string (``12:30:45``, ``12h30m45s``).

    Examples
    --------
    >>> parse_angle("12:30:00", hours=True), parse_angle("-10:30:00", hours=False)
    (187.5, -10.5)
    >>> parse_angle("187.5", hours=True)
    187.5
    """
    import astropy.units as u
    from astropy.coordinates import Angle

    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        sexa = any(c in text for c in ":hHmsdD ")
        unit = u.hourangle if hours and sexa and "d" not in text.lower() else u.deg
        return round(float(Angle(text, unit=unit).deg), 10)  # 0.4 micro-arcsec
    except Exception as exc:
        raise ActionError(f"cannot read {'RA' if hours else 'Dec'} {text!r}") from exc


class TableRegistry:
    """Tables seen in ``table.load.*`` messages, by ``table-id`` and by URL."""

    def __init__(self, cache_size: int = 8) -> None:
        self._by_id: dict[str, str] = {}
        self._cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._cache_size = cache_size

    def note_load(self, params: dict[str, Any]) -> None:
        """Record a ``table.load.*`` message's params."""
        url, tid = params.get("url"), params.get("table-id")
        if isinstance(url, str):
            self._by_id[url] = url
            if isinstance(tid, str):
                self._by_id[tid] = url

    def url_for(self, table: str | None, url: str | None) -> str | None:
        """The URL of a table given its id or URL."""
        if url:
            return url
        return self._by_id.get(table) if table else None

    def id_for(self, url: str) -> str | None:
        """A table-id other than the URL itself under which ``url`` was loaded."""
        return next((t for t, u in self._by_id.items() if u == url and t != url), None)

    async def position(self, url: str, row: int) -> tuple[float, float]:
        """RA and Dec in degrees of ``row`` (0-based) of the table at ``url``."""
        cols = self._cache.get(url)
        if cols is None:
            cols = await asyncio.to_thread(_read_columns, url)
            self._cache[url] = cols
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(url)
        ra, dec = cols
        if not 0 <= row < len(ra):
            raise ActionError(f"row {row} is outside the table ({len(ra)} rows)")
        return _degrees(ra, row, hours=True), _degrees(dec, row, hours=False)


def _find(table: Any, ucd: str, names: tuple[str, ...]) -> Any:
    for col in table.columns.values():
        ucds = str(col.meta.get("ucd", "") or "").lower().split(";")
        if ucd in ucds and "meta.main" in ucds:
            return col
    for col in table.columns.values():
        if ucd in str(col.meta.get("ucd", "") or "").lower().split(";"):
            return col
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n in lower:
            return table[lower[n]]
    return None


def _read_columns(url: str) -> tuple[Any, Any]:
    from astropy.table import Table

    source = url_to_path(url)
    table = None
    errors = []
    notes: list[str] = []
    with astropy_warnings.collect(notes, source):
        for fmt in (None, "votable", "fits"):
            try:
                table = Table.read(source, format=fmt) if fmt else Table.read(source)
                break
            except Exception as exc:
                errors.append(str(exc))
    tail = astropy_warnings.summary(astropy_warnings.capped(notes))
    if table is None:
        raise ActionError(f"cannot read table {url}: {errors[-1]}{tail}")
    if notes:
        log.info("read table %s%s", os.path.basename(source), tail)
    ra = _find(table, "pos.eq.ra", _RA_NAMES)
    dec = _find(table, "pos.eq.dec", _DEC_NAMES)
    if ra is None or dec is None:
        raise ActionError(f"table {url} has no RA/Dec columns (by UCD pos.eq.ra/pos.eq.dec "
                          "or by name)")
    return ra, dec


def _degrees(col: Any, row: int, *, hours: bool) -> float:
    import astropy.units as u

    value = col[row]
    unit = getattr(col, "unit", None)
    if isinstance(value, (bytes, str)):
        text = value.decode() if isinstance(value, bytes) else value
        return parse_angle(text, hours=hours)
    number = float(value)
    if unit is not None and unit != u.deg:
        try:
            return float((number * unit).to(u.deg).value)
        except u.UnitConversionError:
            pass
    return number


def _table_args(ctx: ActionContext, table: Any, url: Any, row: Any = None
                ) -> tuple[str | None, str | None, Any]:
    incoming = ctx.event.params if isinstance(ctx.event, SampMessage) else {}
    tid = str(table.render(ctx.ns)) if table is not None else incoming.get("table-id")
    u = str(url.render(ctx.ns)) if url is not None else incoming.get("url")
    r = row.render(ctx.ns) if row is not None else incoming.get("row")
    return tid, u, r


def _row_number(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ActionError(f"row must be an integer, not {value!r}") from None


async def point_at(action: PointAt, ctx: ActionContext) -> None:
    """Send ``coord.pointAt.sky`` from ``ra``/``dec`` or from a table row."""
    if action.ra is not None and action.dec is not None:
        ra = parse_angle(action.ra.render(ctx.ns), hours=True)
        dec = parse_angle(action.dec.render(ctx.ns), hours=False)
    else:
        tid, url, row = _table_args(ctx, action.table, action.url, action.row)
        url = ctx.services.tables.url_for(tid, url)
        if not url:
            raise ActionError(f"no table {tid!r} has been seen loaded")
        if row is None:
            raise ActionError("point_at needs a row (or ra and dec)")
        ra, dec = await ctx.services.tables.position(url, _row_number(row))
    params = {"ra": repr(float(ra) % 360.0), "dec": repr(float(dec))}
    mtype = "coord.pointAt.sky"
    for cid in await ctx.outbox.resolve(action.to, ctx.ns, mtype=mtype, exclude=(),
                                        required=True):
        await ctx.outbox.notify(ctx.record, "point_at", cid, mtype, params)


async def highlight_row(action: HighlightRow, ctx: ActionContext) -> None:
    """Send ``table.highlight.row`` (table and row default to the incoming message's)."""
    tid, url, row = _table_args(ctx, action.table, action.url, action.row)
    url = ctx.services.tables.url_for(tid, url)
    if url is None or row is None:
        raise ActionError("highlight_row needs a table (id or url) and a row")
    params = {"table-id": tid or ctx.services.tables.id_for(url) or url, "url": url,
              "row": str(_row_number(row))}
    mtype = "table.highlight.row"
    for cid in await ctx.outbox.resolve(action.to, ctx.ns, mtype=mtype, required=True):
        await ctx.outbox.notify(ctx.record, "highlight_row", cid, mtype, params)


async def select_rows(action: SelectRows, ctx: ActionContext) -> None:
    """Send ``table.select.rowList`` (rows default to the incoming ``row-list``)."""
    tid, url, _ = _table_args(ctx, action.table, action.url)
    url = ctx.services.tables.url_for(tid, url)
    if action.rows is not None:
        rows = render_value(action.rows, ctx.ns)
    elif isinstance(ctx.event, SampMessage):
        rows = ctx.event.params.get("row-list")
    else:
        rows = None
    if url is None or not isinstance(rows, (list, tuple)):
        raise ActionError("select_rows needs a table (id or url) and a list of rows")
    params = {"table-id": tid or ctx.services.tables.id_for(url) or url, "url": url,
              "row-list": [str(_row_number(r)) for r in rows]}
    mtype = "table.select.rowList"
    for cid in await ctx.outbox.resolve(action.to, ctx.ns, mtype=mtype, required=True):
        await ctx.outbox.notify(ctx.record, "select_rows", cid, mtype, params)
