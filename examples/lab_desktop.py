#!/usr/bin/env python
"""A lab desktop over SAMP: an image in SAO DS9, its source catalogue in TOPCAT, rows selected.

Uses only sampflow's public API (``sampflow.samp``), which keeps astropy.samp's names:

1. join the running SAMP hub, or start one in this process when there is none;
2. wait until DS9 and TOPCAT are registered (start them yourself: ``ds9 -samp connect`` and
   ``topcat``, or pass ``--launch``);
3. make small demo data with astropy: a FITS image with a sky WCS and a few stars, and a
   VOTable catalogue of those stars (RA/Dec with UCDs, magnitudes);
4. load the image in DS9 (``image.load.fits``), the catalogue in TOPCAT
   (``table.load.votable``), select the bright stars (``table.select.rowList``) and point DS9
   at the brightest (``coord.pointAt.sky``).

Run::

    python examples/lab_desktop.py                  # hub from SAMP_HUB / ~/.samp, or start one
    python examples/lab_desktop.py --launch         # also start DS9 and TOPCAT if missing
    python examples/lab_desktop.py --lockfile /tmp/lab.lock --data /tmp/lab-data --exit

When the script started the hub itself it keeps serving (DS9 and TOPCAT stay connected) until
Ctrl-C, unless ``--exit`` is given. Exit status: 0 when everything was loaded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from sampflow.samp import (
    SAMPClientError,
    SAMPHubError,
    SAMPHubServer,
    SAMPIntegratedClient,
    find_client_id,
    send_image_to,
)

DS9 = "SAOImageDS9"
TOPCAT = "topcat"
TABLE_ID = "lab-demo-catalogue"
CENTRE = (83.8221, -5.3911)  # the Trapezium, in degrees

# name, RA offset and Dec offset from CENTRE in arcsec, V magnitude
STARS = [
    ("theta1 Ori C", 0.0, 0.0, 5.1),
    ("theta1 Ori A", -12.0, 10.0, 6.7),
    ("theta1 Ori B", -8.0, 18.0, 7.9),
    ("theta1 Ori D", 14.0, -8.0, 6.7),
    ("theta1 Ori E", -6.0, 13.0, 11.1),
    ("field star 1", 55.0, 40.0, 12.5),
    ("field star 2", -48.0, -52.0, 13.2),
    ("field star 3", 30.0, -60.0, 12.1),
]


# ------------------------------------------------------------------------------ demo data

def make_demo_data(folder: Path) -> tuple[Path, Path]:
    """Write ``trapezium.fits`` (image with WCS) and ``trapezium.vot`` (catalogue) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    size, scale = 200, 1.0 / 3600  # 200 x 200 pixels of 1 arcsec
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(CENTRE)
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    wcs.wcs.cdelt = [-scale, scale]
    cos_dec = np.cos(np.radians(CENTRE[1]))
    ra = np.array([CENTRE[0] + dx / 3600 / cos_dec for _, dx, _, _ in STARS])
    dec = np.array([CENTRE[1] + dy / 3600 for _, _, dy, _ in STARS])
    mag = np.array([m for *_, m in STARS])

    rng = np.random.default_rng(42)
    image = rng.normal(100.0, 3.0, (size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    px, py = wcs.all_world2pix(ra, dec, 0)
    for x, y, m in zip(px, py, mag, strict=True):
        flux = 10 ** (-0.4 * (m - 15.0)) * 50
        image += flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.8 ** 2))
    header = wcs.to_header()
    header["OBJECT"] = "Trapezium (sampflow demo)"
    header["BUNIT"] = "count"
    image_path = folder / "trapezium.fits"
    fits.PrimaryHDU(image.astype("float32"), header=header).writeto(image_path, overwrite=True)

    table = Table({"name": [s[0] for s in STARS], "RA": ra, "DEC": dec, "Vmag": mag})
    table["RA"].unit = table["DEC"].unit = "deg"
    table["Vmag"].unit = "mag"
    table["RA"].meta["ucd"] = "pos.eq.ra;meta.main"
    table["DEC"].meta["ucd"] = "pos.eq.dec;meta.main"
    table.meta["description"] = "Stars in the sampflow demo image"
    table_path = folder / "trapezium.vot"
    table.write(table_path, format="votable", overwrite=True)
    return image_path, table_path


# ----------------------------------------------------------------------------------- hub

def join_or_start_hub(lockfile: str | None) -> tuple[SAMPIntegratedClient, SAMPHubServer | None]:
    """Connect to the hub of `lockfile` (or of SAMP_HUB / ~/.samp); start one if none answers.

    Returns the connected client and the hub if this process started it.
    """
    if lockfile:  # where the hub is (or will be): also what the client reads
        os.environ["SAMP_HUB"] = "std-lockurl:" + Path(lockfile).resolve().as_uri()
    client = SAMPIntegratedClient(name="sampflow-lab-desktop",
                                  description="sampflow example: loads demo data in DS9, TOPCAT")
    try:
        client.connect()
        print("joined the running SAMP hub")
        return client, None
    except SAMPHubError:
        pass
    hub = SAMPHubServer(lockfile=str(Path(lockfile).resolve()) if lockfile else None,
                        label="lab desktop example")
    hub.start()
    print(f"no SAMP hub was running: started one (lockfile {hub.lockfile})")
    client.connect(hub=hub)
    return client, hub


def launch_missing(client: SAMPIntegratedClient, log_dir: Path) -> list[subprocess.Popen]:
    """Start DS9 and TOPCAT if they are not registered and are installed."""
    started = []
    for name, argv in ((DS9, ["ds9", "-samp", "connect"]), (TOPCAT, ["topcat", "-samp"])):
        try:
            find_client_id(client, name)
            continue
        except SAMPClientError:
            pass
        if shutil.which(argv[0]) is None:
            print(f"{argv[0]} is not installed; start {name} yourself")
            continue
        log = open(log_dir / f"{argv[0]}.log", "wb")
        started.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True))
        print(f"started {' '.join(argv)} (pid {started[-1].pid})")
    return started


def wait_for(client: SAMPIntegratedClient, name: str, mtype: str, timeout: float) -> str:
    """The public id of client `name` once it is subscribed to `mtype` (it is then ready)."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            client_id = find_client_id(client, name)
            if mtype in client.get_subscriptions(client_id):
                return client_id
        except SAMPClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not appear within {timeout:g} s")
        if not said:
            print(f"waiting for {name} to register...")
            said = True
        time.sleep(0.5)


def check(what: str, response: dict) -> bool:
    ok = response.get("samp.status") == "samp.ok"
    error = (response.get("samp.error") or {}).get("samp.errortxt", "")
    print(f"  {what}: {'ok' if ok else response.get('samp.status')} {error}".rstrip())
    return ok


# ---------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lockfile", help="hub lockfile (default: SAMP_HUB or ~/.samp)")
    parser.add_argument("--data", type=Path, help="folder for the demo data (default: temporary)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for DS9 and TOPCAT (default 120)")
    parser.add_argument("--launch", action="store_true", help="start DS9 and TOPCAT if missing")
    parser.add_argument("--exit", action="store_true",
                        help="exit at the end even if this script started the hub")
    args = parser.parse_args(argv)

    data = args.data or Path(tempfile.mkdtemp(prefix="sampflow-lab-"))
    image_path, table_path = make_demo_data(data)
    print(f"demo data: {image_path}, {table_path}")

    client, hub = join_or_start_hub(args.lockfile)
    launched: list[subprocess.Popen] = []
    try:
        if args.launch:
            launched = launch_missing(client, data)
        ds9 = wait_for(client, DS9, "image.load.fits", args.timeout)
        topcat = wait_for(client, TOPCAT, "table.load.votable", args.timeout)
        print(f"DS9 is {ds9}, TOPCAT is {topcat}")

        results = []
        responses = send_image_to(client, image_path, DS9, name="trapezium", timeout=60)
        results.append(check("image -> DS9", responses[ds9]))

        url = table_path.resolve().as_uri()
        load = {"samp.mtype": "table.load.votable",
                "samp.params": {"url": url, "table-id": TABLE_ID, "name": "trapezium stars"}}
        results.append(check("catalogue -> TOPCAT", client.call_and_wait(topcat, load, "60")))

        table = Table.read(table_path)
        bright = [str(i) for i, m in enumerate(table["Vmag"]) if m < 8.0]
        select = {"samp.mtype": "table.select.rowList",
                  "samp.params": {"table-id": TABLE_ID, "url": url, "row-list": bright}}
        for _ in range(20):  # a TOPCAT just started may answer the load before it is listed
            response = client.call_and_wait(topcat, select, "30")
            if response.get("samp.status") == "samp.ok":
                break
            time.sleep(0.5)
        results.append(check(f"select rows {', '.join(bright)} in TOPCAT", response))

        brightest = int(np.argmin(table["Vmag"]))
        point = {"samp.mtype": "coord.pointAt.sky",
                 "samp.params": {"ra": repr(float(table["RA"][brightest])),
                                 "dec": repr(float(table["DEC"][brightest]))}}
        results.append(check(f"DS9 -> {table['name'][brightest]}",
                             client.call_and_wait(ds9, point, "30")))

        if hub is not None and not args.exit:
            print("this script runs the hub: Ctrl-C to stop it")
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if all(results) else 1
    finally:
        client.disconnect()
        for proc in launched:  # the applications are yours now: left running
            print(f"{proc.args[0]} (pid {proc.pid}) is left running")
        if hub is not None:
            hub.stop()


if __name__ == "__main__":
    sys.exit(main())
