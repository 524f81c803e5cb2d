"""Configuration of `sampflow.samp`, shaped like ``astropy.samp.conf`` / ``pyvo.samp.conf``.

astropy's ``Conf`` is an astropy ``ConfigNamespace`` read from astropy's configuration file;
this one is a plain object with the same items and the same three methods code uses
(`Conf.set_temp`, `Conf.reset`, `Conf.reload`). There is no configuration file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

__all__ = ["Conf", "conf"]


class Conf:
    """Settings of `sampflow.samp`.

    Attributes
    ----------
    use_internet : bool
        Kept for astropy / pyvo compatibility (astropy's default is True). sampflow never
        contacts the internet, whatever this says: SAMP is a desktop protocol, and a hub on
        loopback needs nothing outside.
    n_retries : int
        How many times the helpers retry a hub request that failed to connect.
    hub_timeout : float
        Seconds the helpers wait for a ``callAndWait`` response by default.

    Examples
    --------
    >>> with conf.set_temp("n_retries", 1):
    ...     conf.n_retries
    1
    >>> conf.n_retries
    10
    """

    #: The items and their defaults.
    DEFAULTS: ClassVar[dict[str, Any]] = {"use_internet": False, "n_retries": 10,
                                          "hub_timeout": 30.0}

    use_internet: bool
    n_retries: int
    hub_timeout: float

    def __init__(self) -> None:
        self.reset()

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.DEFAULTS)
        return f"Conf({items})"

    def _check(self, name: str) -> None:
        if name not in self.DEFAULTS:
            raise AttributeError(f"no configuration item {name!r}")

    @contextlib.contextmanager
    def set_temp(self, attr: str, value: Any) -> Iterator[None]:
        """Set item `attr` to `value` inside a ``with`` block, then restore it.

        Raises
        ------
        AttributeError
            If there is no item `attr`.
        """
        self._check(attr)
        old = getattr(self, attr)
        setattr(self, attr, value)
        try:
            yield
        finally:
            setattr(self, attr, old)

    def reset(self, attr: str | None = None) -> None:
        """Restore item `attr` (every item when None) to its default.

        Raises
        ------
        AttributeError
            If there is no item `attr`.
        """
        for name in self.DEFAULTS if attr is None else [attr]:
            self._check(name)
            setattr(self, name, self.DEFAULTS[name])

    def reload(self, attr: str | None = None) -> None:
        """Re-read item `attr` (every item when None) from the configuration: with no
        configuration file, the same as `reset`."""
        self.reset(attr)


#: The settings in force.
conf = Conf()
