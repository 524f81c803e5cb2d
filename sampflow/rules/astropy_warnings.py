"""Astropy's warnings about a file, caught and kept as short text for that file's log line.

Astropy tells about odd content (a FITS card that follows no known convention, a VOTable
cell that breaks the schema) with :mod:`warnings`. Printed bare, such a warning names neither
the file nor the rule, and several files read at once interleave theirs. So every astropy call
the engine makes on a user's file runs inside :func:`collect`, and what it caught is reported on
the line of that file (``sent m31.fits to SAOImageDS9 (12 ms); astropy: ...``).

:func:`warnings.catch_warnings` changes process-wide state, so :func:`collect` lets one thread in
at a time (the reads it wraps are short: headers, or a table already bounded by the caller).
A warning some other thread raised meanwhile is not astropy's about this file: it is given back
to :mod:`warnings` afterwards, under the filters in force then.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MAX_NOTES", "MAX_NOTE_CHARS", "capped", "collect", "summary"]

#: Distinct warnings kept per file (more are counted, not kept).
MAX_NOTES = 5
#: Characters kept of one warning's text.
MAX_NOTE_CHARS = 160

_LOCK = threading.Lock()


def _is_astropys(item: warnings.WarningMessage) -> bool:
    """An astropy warning class, or any warning raised from astropy's own code."""
    import astropy
    from astropy.utils.exceptions import AstropyWarning

    package = os.path.dirname(os.path.abspath(astropy.__file__)) + os.sep
    return (issubclass(item.category, AstropyWarning)
            or os.path.abspath(str(item.filename)).startswith(package))


def _condense(text: str, source: str | None) -> str:
    if source and text.startswith(source):
        text = text[len(source):].lstrip(":0123456789 ")  # VOTable's "path:line:col: W49: ..."
    text = " ".join(text.split())
    if len(text) > MAX_NOTE_CHARS:
        text = text[:MAX_NOTE_CHARS - 1].rstrip() + "…"
    return text


@contextmanager
def collect(notes: list[str], source: str | None = None) -> Iterator[None]:
    """Catch astropy's warnings raised in the block and append them to `notes` as short text.

    Parameters
    ----------
    notes : list of str
        Receives each distinct warning once (whitespace folded, at most
        :data:`MAX_NOTE_CHARS` characters); :func:`capped` bounds the list for a log line.
    source : str, optional
        The file's path or URL, cut from the front of a warning that repeats it.

    Notes
    -----
    Blocks run one at a time across threads (see the module docstring). Warnings that are not
    astropy's are passed on to :func:`warnings.warn_explicit` after the block.
    """
    with _LOCK:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                items = list(caught)
    others = []
    for item in items:
        if not _is_astropys(item):
            others.append(item)
            continue
        text = _condense(str(item.message), source)
        if text not in notes:
            notes.append(text)
    for item in others:
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


def capped(notes: list[str]) -> tuple[str, ...]:
    """At most :data:`MAX_NOTES` of `notes`, and a last ``"and N more"`` counting the rest.

    Examples
    --------
    >>> capped([str(i) for i in range(7)])
    ('0', '1', '2', '3', '4', 'and 2 more')
    """
    if len(notes) <= MAX_NOTES:
        return tuple(notes)
    return (*notes[:MAX_NOTES], f"and {len(notes) - MAX_NOTES} more")


def summary(notes: tuple[str, ...] | list[str]) -> str:
    """``"; astropy: a; b"`` to end a file's log line, or ``""`` when there is nothing to say.

    Examples
    --------
    >>> summary(("unparsable card DATE-OBS",))
    '; astropy: unparsable card DATE-OBS'
    >>> summary(())
    ''
    """
    return "; astropy: " + "; ".join(notes) if notes else ""
