"""pyvo-style helpers over `SAMPIntegratedClient` (pyvo's ``pyvo.samp`` names, done better).

- `connection` opens and always closes a client.
- `find_client_id` finds a client by ``samp.name``.
- `send_table_to`, `send_image_to`, `send_spectrum_to`, `send_product_to` send a product as a
  *call* to one named client, or to every client subscribed to the MType, and return each
  recipient's response; a temporary table file lives until every recipient has answered.

MTypes used (SAMP MType list): ``table.load.votable`` (params ``url``, ``table-id``,
``name``), ``image.load.fits`` (``url``, ``image-id``, ``name``),
``spectrum.load.ssa-generic`` (``url``, ``meta``, ``spectrum-id``, ``name``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .client.aio import AsyncSAMPClient
from .client.sync import SAMPIntegratedClient
from .config import conf
from .errors import SAMPClientError, SAMPHubError
from .names import client_matches
from .types import error_response

__all__ = [
    "connection",
    "find_client_id",
    "send_table_to",
    "send_image_to",
    "send_spectrum_to",
    "send_product_to",
    "accessible_table",
    "file_url",
]


def file_url(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URL of a local path (made absolute).

    >>> file_url("/tmp/a b.fits")
    'file:///tmp/a%20b.fits'
    """
    return Path(path).expanduser().resolve().as_uri()


def _as_url(url_or_path: str | os.PathLike[str]) -> str:
    text = os.fspath(url_or_path)
    if "://" in text or text.startswith("file:"):
        return text
    return file_url(text)


@contextlib.contextmanager
def connection(client_name: str = "sampflow client",
               description: str = "A sampflow SAMP client",
               **kwargs: Any) -> Iterator[SAMPIntegratedClient]:
    """A connected `SAMPIntegratedClient`, disconnected on exit, even after an error.

    Parameters
    ----------
    client_name : str
        ``samp.name``.
    description : str
        ``samp.description.text``.
    **kwargs
        Passed to `SAMPIntegratedClient.connect` (``hub``, ``hub_params``).

    Yields
    ------
    SAMPIntegratedClient

    Raises
    ------
    SAMPHubError
        If no hub can be joined.
    """
    client = SAMPIntegratedClient(name=client_name, description=description)
    client.connect(**kwargs)
    try:
        yield client
    finally:
        client.disconnect()


def find_client_id(conn: SAMPIntegratedClient, name: str) -> str:
    """The public id of the first registered client that the name pattern `name` picks.

    The rule is `sampflow.samp.names.client_matches`: the exact public id, or the
    ``samp.name`` as a case-insensitive shell-style glob (``"saoimage*"``, ``"topcat"``).

    Parameters
    ----------
    conn : SAMPIntegratedClient
        A connected client.
    name : str
        The name pattern.

    Returns
    -------
    str
        The public id.

    Raises
    ------
    SAMPClientError
        If no registered client matches.
    """
    client_ids = conn.get_registered_clients()
    if name in client_ids:  # a public id picks that client alone (as in select_clients)
        return name
    for client_id in client_ids:
        client_name = conn.get_metadata(client_id).get("samp.name")
        if client_matches(name, client_id, client_name if isinstance(client_name, str) else None):
            return client_id
    raise SAMPClientError(f"no registered SAMP client named {name!r}")


def send_product_to(conn: SAMPIntegratedClient, url: str | os.PathLike[str], mtype: str,
                    client_name: str | None = None, name: str = "data",
                    extra_params: dict[str, Any] | None = None,
                    timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Send a product by URL as a call of `mtype`, to one client or to all subscribed.

    Parameters
    ----------
    conn : SAMPIntegratedClient
        A connected client.
    url : str or path-like
        The product's URL, or a local path (sent as a ``file://`` URL).
    mtype : str
        The MType, for example ``image.load.fits``.
    client_name : str, optional
        The recipient's ``samp.name`` (glob allowed); every client subscribed to `mtype`
        when omitted.
    name : str
        The ``name`` parameter.
    extra_params : dict, optional
        Further parameters.
    timeout : float, optional
        Seconds to wait for each response; ``conf.hub_timeout`` by default.

    Returns
    -------
    dict
        Recipient public id -> its SAMP response map (a ``samp.error`` map when the call
        failed or timed out). Empty when nobody is subscribed.

    Raises
    ------
    SAMPClientError
        If `client_name` matches no client, or `conn` is not connected.
    """
    params = {"url": _as_url(url), "name": name, **(extra_params or {})}
    message = {"samp.mtype": mtype, "samp.params": params}
    if client_name is not None:
        recipients = [find_client_id(conn, client_name)]
    else:
        recipients = list(conn.get_subscribed_clients(mtype))
    wait = conf.hub_timeout if timeout is None else timeout

    async def one(aio: AsyncSAMPClient, recipient: str) -> tuple[str, dict[str, Any]]:
        try:
            return recipient, await aio.call_and_wait(recipient, message, wait)
        except SAMPHubError as exc:
            return recipient, error_response(str(exc))

    async def everyone(aio: AsyncSAMPClient) -> list[tuple[str, dict[str, Any]]]:
        return list(await asyncio.gather(*(one(aio, r) for r in recipients)))

    return dict(conn.run_blocking(everyone))


@contextlib.contextmanager
def accessible_table(table: Any, name: str = "data") -> Iterator[str]:
    """Write `table` to a temporary VOTable file and yield its ``file://`` URL.

    The file is removed on exit.

    Parameters
    ----------
    table : astropy.table.Table or astropy.io.votable.tree.VOTableFile
        The table.
    name : str
        Used in the file name.

    Yields
    ------
    str
        The URL.
    """
    from astropy.io.votable.tree import VOTableFile

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "table"
    folder = tempfile.mkdtemp(prefix="sampflow-")
    path = Path(folder) / f"{safe}.vot"
    try:
        if isinstance(table, VOTableFile):
            table.to_xml(str(path))
        else:
            table.write(str(path), format="votable")
        yield file_url(path)
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)


def send_table_to(conn: SAMPIntegratedClient, table: Any, client_name: str | None = None,
                  name: str = "data", timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Send `table` as ``table.load.votable``, to one client or to all subscribed.

    Parameters
    ----------
    conn : SAMPIntegratedClient
        A connected client.
    table : astropy.table.Table, VOTableFile, str or path-like
        The table; a string or path is sent as the URL of an existing VOTable.
    client_name : str, optional
        Recipient ``samp.name`` (glob allowed); all subscribed clients when omitted.
    name : str
        The ``name`` parameter (the label the recipient shows).
    timeout : float, optional
        Seconds to wait for each response.

    Returns
    -------
    dict
        Recipient public id -> its response map; see `send_product_to`.

    Raises
    ------
    SAMPClientError
        If `client_name` matches no client.
    """
    table_id = f"{name}-{secrets.token_hex(4)}"
    extra = {"table-id": table_id}
    if isinstance(table, (str, os.PathLike)):
        return send_product_to(conn, table, "table.load.votable", client_name, name, extra,
                               timeout)
    with accessible_table(table, name) as url:
        return send_product_to(conn, url, "table.load.votable", client_name, name, extra,
                               timeout)


def send_image_to(conn: SAMPIntegratedClient, url: str | os.PathLike[str],
                  client_name: str | None = None, name: str = "data",
                  timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Send a FITS image by URL or path as ``image.load.fits``; see `send_product_to`."""
    return send_product_to(conn, url, "image.load.fits", client_name, name,
                           {"image-id": f"{name}-{secrets.token_hex(4)}"}, timeout)


def send_spectrum_to(conn: SAMPIntegratedClient, url: str | os.PathLike[str],
                     client_name: str | None = None, name: str = "data",
                     timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Send a spectrum by URL or path as ``spectrum.load.ssa-generic``; see
    `send_product_to`."""
    return send_product_to(conn, url, "spectrum.load.ssa-generic", client_name, name,
                           {"meta": {}, "spectrum-id": f"{name}-{secrets.token_hex(4)}"},
                           timeout)
