"""Configuration of `sampflow.samp`, shaped like pyvo's ``pyvo.samp.conf``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Conf", "conf"]


@dataclass
class Conf:
    """Settings of `sampflow.samp`.

    Attributes
    ----------
    use_internet : bool
        Kept for pyvo compatibility. sampflow never contacts the internet, whatever this
        says: SAMP is a desktop protocol, and a hub on loopback needs nothing outside.
    n_retries : int
        How many times the helpers retry a hub request that failed to connect.
    hub_timeout : float
        Seconds the helpers wait for a ``callAndWait`` response by default.
    """

    use_internet: bool = False
    n_retries: int = 10
    hub_timeout: float = 30.0


#: The settings in force.
conf = Conf()
