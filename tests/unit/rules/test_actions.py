"""Actions that look inside files and tables (astropy), through the engine and the hub core
wired in memory."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from sampflow.rules.actions.files import classify
from sampflow.rules.actions.tables import parse_angle
from sampflow.rules.errors import ActionError

from .waiting import barrier, until


def make_files(tmp_path):
    img = tmp_path / "img.fits"
    fits.PrimaryHDU(np.zeros((3, 3), dtype=np.float32)).writeto(img)
    tab = tmp_path / "cat.fits"
    t = Table({"RA": [10.0, 20.0], "DEC": [-1.0, 2.5], "mag": [12.0, 13.0]})
    t.write(tab)
    vot = tmp_path / "cat.xml"
    tv = Table({"alpha": [150.0, 151.0], "delta": [2.0, 3.0], "id": [1, 2]})
    tv["alpha"].meta["ucd"] = "pos.eq.ra;meta.main"
    tv["delta"].meta["ucd"] = "pos.eq.dec;meta.main"
    tv.write(vot, format="votable")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    return img, tab, vot, txt


def test_classify_by_content(tmp_path) -> None:
    img, tab, vot, txt = make_files(tmp_path)
    assert classify(str(img)) == "image.load.fits"
    assert classify(str(tab)) == "table.load.fits"
    assert classify(str(vot)) == "table.load.votable"
    with pytest.raises(ActionError, match="not a FITS image"):
        classify(str(txt))


def test_parse_angle() -> None:
    assert parse_angle("12h30m00s", hours=True) == pytest.approx(187.5)
    assert parse_angle("+12:30:00", hours=False) == pytest.approx(12.5)
    with pytest.raises(ActionError):
        parse_angle("north", hours=False)


async def test_send_file_picks_the_mtype_and_recipients(setup, tmp_path) -> None:
    img, tab, vot, txt = make_files(tmp_path)
    ds9 = setup.hub.client("SAOImageDS9", {"image.load.fits": {}})
    topcat = setup.hub.client("topcat", {"table.load.*": {}})
    folder = tmp_path / "incoming"
    folder.mkdir()
    await setup.engine(f"""
        rules:
          - name: send
            on: {{files: "{folder}", settle: 0s}}
            mode: queued
            do: [{{send_file: {{}}}}]
    """)
    moved = [folder / p.name for p in (img, tab, vot, txt)]
    for p, dest in zip((img, tab, vot, txt), moved, strict=True):
        os.rename(p, dest)  # into the watched folder, as a finished file arrives
    await until(lambda: len(setup.records) == 4, what="four firings")
    await setup.hub.settle()
    by_path = {r.event["path"]: r.status for r in setup.records}
    assert by_path == {str(moved[0]): "ok", str(moved[1]): "ok", str(moved[2]): "ok",
                       str(moved[3]): "error"}
    img, tab = moved[0].resolve(), moved[1].resolve()
    assert ds9.got("image.load.fits") == [
        {"url": img.as_uri(), "name": "img.fits", "image-id": img.as_uri()}]
    assert [p["url"] for p in topcat.got("table.load.fits")] == [tab.as_uri()]
    assert [p["name"] for p in topcat.got("table.load.votable")] == ["cat.xml"]


async def test_point_at_row_of_a_table_seen_loaded(setup, tmp_path) -> None:
    img, tab, vot, txt = make_files(tmp_path)
    aladin = setup.hub.client("Aladin", {"coord.pointAt.sky": {}})
    eng = await setup.engine("""
        rules:
          - name: follow highlights
            on: {mtype: table.highlight.row, from: topcat}
            mode: queued
            do: [{point_at: aladin}]
          - name: explicit
            on: {mtype: test.point}
            do: [{point_at: {to: Aladin, ra: "12:30:00", dec: "-10:30:00"}}]
    """)
    topcat = setup.hub.client("topcat")
    eid = eng.client.public_id
    await topcat.notify(eid, {"samp.mtype": "table.load.votable",
                              "samp.params": {"url": vot.resolve().as_uri(), "table-id": "v1"}})
    await topcat.notify(eid, {"samp.mtype": "table.load.fits",
                              "samp.params": {"url": tab.resolve().as_uri(), "table-id": "f1"}})
    await setup.hub.settle()
    for tid, row in (("v1", "1"), ("f1", "0")):
        await topcat.notify(eid, {"samp.mtype": "table.highlight.row",
                                  "samp.params": {"table-id": tid, "row": row}})
    await topcat.notify(eid, {"samp.mtype": "test.point", "samp.params": {}})
    await setup.hub.settle()
    await eng.wait_idle()
    await setup.hub.settle()
    got = sorted((round(float(p["ra"]), 6), round(float(p["dec"]), 6))
                 for p in aladin.got("coord.pointAt.sky"))
    assert got == [(10.0, -1.0), (151.0, 3.0), (187.5, -10.5)]


async def test_highlight_select_and_forward(setup) -> None:
    topcat = setup.hub.client("topcat", {"table.highlight.row": {}, "table.select.rowList": {}})
    ds9 = setup.hub.client("ds9", {"table.*": {}})
    eng = await setup.engine("""
        rules:
          - name: mirror
            on: {mtype: test.rows}
            do:
              - highlight_row: {to: topcat, table: t1, url: "file:///t.vot", row: "{{ params.r }}"}
              - select_rows: {to: topcat, table: t1, url: "file:///t.vot",
                              rows: "{{ params.rows }}"}
          - name: pass on
            on: {mtype: table.select.rowList}
            do: [{forward: {}}]
    """)
    tool = setup.hub.client("tool")
    await tool.notify(eng.client.public_id, {"samp.mtype": "test.rows",
                                             "samp.params": {"r": "4", "rows": ["1", "3"]}})
    await setup.hub.settle()
    await eng.wait_idle()
    await setup.hub.settle()
    assert topcat.got("table.highlight.row") == [{"table-id": "t1", "url": "file:///t.vot",
                                                  "row": "4"}]
    sel = {"table-id": "t1", "url": "file:///t.vot", "row-list": ["1", "3"]}
    assert topcat.got("table.select.rowList") == [sel]
    # topcat's copy came from the engine, so the engine does not hear it; forward a fresh one
    await tool.notify(eng.client.public_id, {"samp.mtype": "table.select.rowList",
                                             "samp.params": {"row-list": ["9"]}})
    await setup.hub.settle()
    await eng.wait_idle()
    await setup.hub.settle()
    assert ds9.got("table.select.rowList") == [{"row-list": ["9"]}]
    assert topcat.got("table.select.rowList")[-1] == {"row-list": ["9"]}


async def test_watched_folder_sends_each_image_once(setup, tmp_path) -> None:
    ds9 = setup.hub.client("SAOImageDS9", {"image.load.fits": {}})
    await setup.engine("""
        vars: {folder: /nowhere}
        rules:
          - name: new FITS images go to DS9
            on: {files: "{{ vars.folder }}", patterns: ["*.fits"], settle: 200ms}
            key: "{{ file.path }}"
            do: [{send_file: SAOImageDS9}]
    """, overrides={"folder": str(tmp_path)})

    def fired(path: str) -> bool:  # the rule ran for it (a barrier is no FITS: an error)
        return any(r.event.get("path") == path for r in setup.records)

    data = fits.PrimaryHDU(np.zeros((64, 64), dtype=np.float32))
    tmp = tmp_path / "chunked.part"
    data.writeto(tmp)
    blob = tmp.read_bytes()
    tmp.unlink()
    step = 2880 * 2
    with open(tmp_path / "slow.fits", "wb") as f:
        for i in range(0, len(blob), step):
            f.write(blob[i:i + step])
            f.flush()
            if i in (0, step * 2):  # pause longer than settle, the file still open
                await barrier(tmp_path, f"pause{i}.fits", fired)
                assert ds9.got("image.load.fits") == []
    await until(lambda: ds9.got("image.load.fits"), what="DS9 to get slow.fits")
    await barrier(tmp_path, "after.fits", fired)
    await setup.hub.settle()
    assert [p["name"] for p in ds9.got("image.load.fits")] == ["slow.fits"]
    assert os.path.getsize(tmp_path / "slow.fits") == len(blob)
