"""pyvo's ``pyvo.samp.vo_helpers`` module path: the helpers, implemented in
`sampflow.samp.helpers` (sent as calls, each recipient's response returned).

Every name of `sampflow.samp.helpers` (its ``__all__``) is here under this path.
"""

from __future__ import annotations

from .helpers import *  # noqa: F403 (the same names under pyvo's module path)
from .helpers import __all__ as __all__
