"""Helpers for the browser end-to-end tests: a static page server, the Chromium driver, and
``sampflow hub`` with its Web Profile port read back from its log.

Plain Python (no pytest import). Processes are started in their own session and stopped by
PID (their process group), SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent
NODE_MODULES = WEB_DIR / "node_modules"
CHROMIUM = os.environ.get("SAMPFLOW_CHROMIUM", "/usr/bin/chromium")
_WEB_PORT_LINE = re.compile(r"SAMP Web Profile listening at http://[^:]+:(\d+)/")


def missing_tools() -> list[str]:
    """What the browser tests need and cannot find (node, npm, chromium)."""
    needed = [t for t in ("node", "npm") if shutil.which(t) is None]
    if not os.access(CHROMIUM, os.X_OK):
        needed.append(CHROMIUM)
    return needed


def ensure_node_modules(timeout: float = 300.0) -> None:
    """Install ``sampjs`` and ``playwright-core`` (``package.json``) with npm if absent.

    Raises
    ------
    RuntimeError
        If npm fails.
    """
    wanted = [NODE_MODULES / "sampjs" / "samp.js", NODE_MODULES / "playwright-core"]
    if all(p.exists() for p in wanted):
        return
    lock = WEB_DIR / "package-lock.json"
    argv = ["npm", "ci" if lock.exists() else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(argv, cwd=WEB_DIR, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0 or not all(p.exists() for p in wanted):
        raise RuntimeError(f"{' '.join(argv)} failed in {WEB_DIR}:\n{done.stdout}\n{done.stderr}")


class PageServer:
    """Serves ``page.html`` and ``samp.js`` on ``127.0.0.1:<ephemeral>``: one web origin."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, page: str = "page.html", **query: Any) -> str:
        qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
        return f"{self.origin}/{page}" + (f"?{qs}" if qs else "")

    async def start(self) -> PageServer:
        files = {"page.html": WEB_DIR / "page.html", "deputy.html": WEB_DIR / "deputy.html",
                 "samp.js": NODE_MODULES / "sampjs" / "samp.js"}

        async def serve(request: web.Request) -> web.FileResponse:
            return web.FileResponse(files[request.match_info["name"]])

        app = web.Application()
        app.router.add_get("/{name:page\\.html|deputy\\.html|samp\\.js}", serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _stop_group(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue


async def run_page(url: str, timeout: float = 60.0) -> tuple[dict[str, Any] | None, str]:
    """Open `url` in headless Chromium until the page reports ``window.sampflowResult``.

    Returns
    -------
    result : dict or None
        What the page reported; None when it did not (see the log).
    log : str
        The driver's stderr: browser console, page errors, failed requests.
    """
    proc = await asyncio.create_subprocess_exec(
        "node", str(WEB_DIR / "drive.mjs"), url, str(timeout), CHROMIUM,
        cwd=WEB_DIR, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 30)
    finally:
        await _stop_group(proc)
    text = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        return None, text
    return json.loads(out.decode("utf-8").strip().splitlines()[-1]), text


def web_port_of(hub: Any, timeout: float = 15.0) -> int:
    """The Web Profile port a ``sampflow hub --web-port 0`` logged (``samphub.SampflowHub``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _WEB_PORT_LINE.search(hub.log_tail(20000))
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"the hub never logged its Web Profile port:\n{hub.log_tail()}")
