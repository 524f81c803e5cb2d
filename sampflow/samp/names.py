"""How a user names a SAMP client: the one rule for ``to:``, ``from:``, ``registered:``,
``registered(...)``, ``sampflow send --to`` and `find_client_id`.

A *name pattern* picks a client by its public id or by its ``samp.name`` (SAMP 1.3 section
3.6 metadata):

1. **Public id, exactly.** A pattern equal to a client's public id (``"c3"``, as the hub
   assigned it, case and all) picks that client. When choosing among clients
   (`select_clients`), an exact public id picks that one client alone.
2. **samp.name, as a case-insensitive shell glob** (`fnmatch` syntax: ``*``, ``?``,
   ``[...]``). ``"topcat"`` picks TOPCAT (``samp.name`` ``topcat``) and ``"aladin"`` picks
   ``Aladin``; DS9 calls itself ``SAOImageDS9``, so it is picked by ``"SAOImageDS9"``,
   ``"saoimage*"`` or ``"*ds9"``, but not by a bare ``"ds9"`` (a name pattern is matched
   whole, never as a substring: ``"topcat"`` does not pick ``topcat-2``).
3. **``NAME@HUB``** also picks the proxy, mirrored by the federation link (``sampflow link``),
   of client ``NAME`` of linked hub ``HUB``: a client whose ``samp.name`` matches
   ``NAME (proxy@HUB)`` (`sampflow.samp.link.naming.address_glob`). Both halves may be
   globs: ``"*@desk3"`` is every client of desk3.
4. **An unknown name is the empty name**: a client that has declared no ``samp.name`` is
   picked only by its public id or by a glob that matches the empty string (``"*"``).

This module imports nothing but the standard library and the link's naming conventions, so
that both `sampflow.samp` (the lower layer) and `sampflow.rules` use it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from .link.naming import address_glob

__all__ = ["client_matches", "glob_matches", "select_clients"]


def glob_matches(text: str, pattern: str) -> bool:
    """Tell whether `text` matches the shell-style glob `pattern`, ignoring case.

    This is the ``samp.name`` half of `client_matches`, and the expressions' ``match()``.

    Parameters
    ----------
    text : str
        The text to test, a ``samp.name`` for example.
    pattern : str
        A glob: ``*`` any run of characters, ``?`` one character, ``[seq]`` one of `seq`.

    Returns
    -------
    bool
        Whether the whole of `text` matches.

    Examples
    --------
    >>> glob_matches("SAOImageDS9", "saoimage*"), glob_matches("SAOImageDS9", "ds9")
    (True, False)
    """
    return fnmatch.fnmatchcase(text.lower(), pattern.lower())


def client_matches(pattern: str, client_id: str, name: str | None) -> bool:
    """Tell whether the name pattern `pattern` picks the client `client_id` called `name`.

    The rule is the module's: the exact public id, or the ``samp.name`` as a
    case-insensitive glob, or ``NAME@HUB`` for a linked hub's proxy; an unknown name is the
    empty name.

    Parameters
    ----------
    pattern : str
        What the user wrote (``"topcat"``, ``"SAOImage*"``, ``"c3"``, ``"DS9@desk3"``).
    client_id : str
        The client's public id.
    name : str or None
        Its ``samp.name``, or None when it has declared none.

    Returns
    -------
    bool

    Examples
    --------
    >>> client_matches("topcat", "c1", "topcat"), client_matches("TOPCAT", "c1", "topcat")
    (True, True)
    >>> client_matches("c3", "c3", "Aladin"), client_matches("C3", "c3", "Aladin")
    (True, False)
    >>> client_matches("*ds9", "c2", "SAOImageDS9"), client_matches("ds9", "c2", "SAOImageDS9")
    (True, False)
    >>> client_matches("SAOImageDS9@desk3", "c9", "SAOImageDS9 (proxy@desk3)")
    True
    >>> client_matches("*", "c4", None), client_matches("a*", "c4", None)
    (True, False)
    """
    if pattern == client_id:
        return True
    text = name or ""
    if glob_matches(text, pattern):
        return True
    proxies = address_glob(pattern)
    return proxies is not None and glob_matches(text, proxies)


def select_clients(pattern: str, names: Mapping[str, str | None]) -> list[str]:
    """The public ids, among `names`, that the name pattern `pattern` picks.

    Parameters
    ----------
    pattern : str
        A name pattern (see the module docstring).
    names : mapping of str to str or None
        Public id -> ``samp.name`` (None when unknown) of each candidate client, in the
        order the result should keep.

    Returns
    -------
    list of str
        ``[pattern]`` alone when `pattern` is one of the public ids; otherwise every id
        whose client `client_matches` the pattern, in the order of `names`.

    Examples
    --------
    >>> clients = {"c1": "topcat", "c2": "SAOImageDS9", "c3": "c1", "c4": None}
    >>> select_clients("c1", clients)
    ['c1']
    >>> select_clients("*", clients)
    ['c1', 'c2', 'c3', 'c4']
    >>> select_clients("saoimage*", clients), select_clients("ds9", clients)
    (['c2'], [])
    """
    if pattern in names:
        return [pattern]
    return [cid for cid, name in names.items() if client_matches(pattern, cid, name)]
