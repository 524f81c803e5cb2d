"""File facts (issue 9, item 9): bounded, off the loop, regular files only, never the data."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from sampflow.rules import filefacts
from sampflow.rules.filefacts import FileFacts, facts_for, offload, read_facts

pytestmark = pytest.mark.timeout(60)


def image(path: Path, shape: tuple[int, ...] = (3, 4), **cards: object) -> Path:
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=np.float32))
    for k, v in cards.items():
        hdu.header[k] = v
    hdu.writeto(path, overwrite=True)
    return path


def sparse_fits(path: Path, total: int, *, extension: bool = False) -> Path:
    """A FITS image declaring ~`total` bytes of data, as a sparse file (no disk used)."""
    side = int((total // 4) ** 0.5)
    hdr = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", side),
                       ("NAXIS2", side), ("OBJECT", "big")])
    data = -(-side * side * 4 // 2880) * 2880
    with path.open("wb") as f:
        f.write(hdr.tostring().encode())
        if extension:
            f.seek(2880 + data)
            ext = fits.Header([("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2),
                               ("NAXIS1", 8), ("NAXIS2", 0), ("PCOUNT", 0), ("GCOUNT", 1),
                               ("TFIELDS", 1), ("TTYPE1", "X"), ("TFORM1", "D"),
                               ("EXTNAME", "LATE")])
            f.write(ext.tostring().encode())
        else:
            f.truncate(2880 + data)
    return path


def test_kinds_by_content(tmp_path: Path) -> None:
    img = image(tmp_path / "img.fits", OBJECT="M31")
    tab = tmp_path / "cat.fits"
    Table({"RA": [1.0, 2.0]}).write(tab)
    vot = tmp_path / "cat.xml"
    Table({"RA": [1.0, 2.0]}).write(vot, format="votable")
    gz = tmp_path / "m31.fits.gz"
    gz.write_bytes(gzip.compress(img.read_bytes()))
    bz = tmp_path / "m31.fits.bz2"
    bz.write_bytes(bz2.compress(img.read_bytes()))
    votgz = tmp_path / "cat.vot.gz"
    votgz.write_bytes(gzip.compress(vot.read_bytes()))
    fz = tmp_path / "tiles.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((16, 16), np.float32))]
                 ).writeto(fz)
    empty_primary = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((2, 2), np.int16), name="SCI")]
                 ).writeto(empty_primary)
    txt = tmp_path / "notes.txt"
    txt.write_text("SIMPLE? no")
    got = {p.name: read_facts(str(p)) for p in (img, tab, vot, gz, bz, votgz, fz,
                                                 empty_primary, txt)}
    assert {n: f.mtype for n, f in got.items()} == {
        "img.fits": "image.load.fits", "cat.fits": "table.load.fits",
        "cat.xml": "table.load.votable", "m31.fits.gz": "image.load.fits",
        "m31.fits.bz2": "image.load.fits", "cat.vot.gz": "table.load.votable",
        "tiles.fits.fz": "image.load.fits", "mef.fits": "image.load.fits", "notes.txt": None}
    assert got["img.fits"].kind == "image" and got["cat.xml"].kind == "table"
    assert got["m31.fits.gz"].headers["OBJECT"] == "M31"
    assert got["mef.fits"].headers["EXTNAME"] == "SCI"  # from the extension's header
    assert got["notes.txt"].kind is None and "not a FITS image" in got["notes.txt"].reason
    assert got["img.fits"].size == img.stat().st_size
    assert got["img.fits"].url == img.resolve().as_uri()


def test_non_regular_files_are_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "x.fits"
    os.mkfifo(fifo)
    link = tmp_path / "link.fits"
    link.symlink_to(image(tmp_path / "real.fits"))
    (tmp_path / "dir.fits").mkdir()
    for path, what in ((fifo, "a FIFO"), (link, "a symbolic link"),
                       (tmp_path / "dir.fits", "a folder")):
        facts = read_facts(str(path))  # a blocking open of the FIFO would hang the test
        assert facts.kind is None and what in str(facts.reason), facts
        assert facts.bytes_read == 0
    missing = read_facts(str(tmp_path / "gone.fits"))
    assert missing.kind is None and missing.size == -1


def test_a_ten_gigabyte_sparse_fits_is_classified_from_its_header(tmp_path: Path) -> None:
    big = sparse_fits(tmp_path / "big.fits", 10 * 2**30)
    assert big.stat().st_size > 10 * 10**9
    facts = read_facts(str(big))
    assert facts.mtype == "image.load.fits" and facts.headers["OBJECT"] == "big"
    assert facts.bytes_read <= 4 * 2880, facts.bytes_read
    # An extension after 10 GB of data is reached by a seek, not by reading the data.
    mef = sparse_fits(tmp_path / "mef.fits", 10 * 2**30, extension=True)
    facts = read_facts(str(mef))
    assert facts.headers["EXTNAME"] == "LATE"
    assert facts.bytes_read <= 4 * 2880, facts.bytes_read


def test_compressed_files_are_bounded_too(tmp_path: Path) -> None:
    # A gzip bomb: a tiny file that would decompress to 1 GB of zeros after a valid header.
    hdr = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 1), ("NAXIS1", 2**30)])
    bomb = tmp_path / "bomb.fits.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(hdr.tostring().encode())
        chunk = bytes(2**20)
        for _ in range(1024):
            f.write(chunk)
    facts = read_facts(str(bomb))
    assert facts.mtype == "image.load.fits"
    assert facts.bytes_read <= filefacts.MAX_READ_BYTES
    # Garbage that never ends a header: bounded by the header budget, reported.
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"X" * (3 * 2**20))
    facts = read_facts(str(junk))
    assert facts.kind is None and "FITS" in str(facts.reason)
    assert facts.bytes_read <= filefacts.MAX_HEADER_BYTES + 2 * 2880


async def test_facts_for_is_cached_and_follows_changes(tmp_path: Path) -> None:
    path = image(tmp_path / "a.fits", OBJECT="one")
    first = await facts_for(str(path))
    again = await facts_for(str(path))
    assert first is again
    before = os.stat(path).st_mtime_ns
    image(path, (5, 5), OBJECT="two")
    os.utime(path, ns=(before + 10**9, before + 10**9))  # changed, whatever the clock's grain
    assert (await facts_for(str(path))).headers["OBJECT"] == "two"


async def test_many_fifos_do_not_starve_the_pool_or_the_loop(tmp_path: Path) -> None:
    fifos = []
    for i in range(16):
        fifos.append(tmp_path / f"f{i:02d}.fits")
        os.mkfifo(fifos[-1])
    img = image(tmp_path / "real.fits")
    ticks = 0

    def tick() -> None:  # runs only if the loop is free while the looks go on
        nonlocal ticks
        ticks += 1

    looks = asyncio.gather(*(facts_for(str(p)) for p in fifos), facts_for(str(img)))
    asyncio.get_running_loop().call_soon(tick)
    results = await asyncio.wait_for(looks, 30)
    assert all(f.kind is None and "FIFO" in str(f.reason) for f in results[:-1])
    assert results[-1].kind == "image"
    assert ticks > 0
    # The default executor was never involved.
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 10) == 42


async def test_a_look_that_takes_too_long_times_out(tmp_path: Path) -> None:
    release = threading.Event()
    with pytest.raises(TimeoutError):
        await offload(release.wait, 20, timeout=0.2)
    release.set()
    facts = FileFacts.unknown(str(tmp_path / "x"), "why")
    assert facts.kind is None and facts.url.startswith("file://")
