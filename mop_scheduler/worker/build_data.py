"""The sample of training data a model builder may receive while it builds (for ``adapt``, vocabularies).

A plain attribute bag, kept apart from the factory so that typed-data code can fill ``frame`` (and any
other typed form) without touching entry resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: At most this many training rows reach a builder: enough for ``Normalization.adapt`` and vocabularies,
#: small enough to copy into every worker.
SAMPLE_ROWS = 4096

#: What ``bind_globals`` may bind a script's module-level names to.
BINDABLE = ("x", "y", "frame")


@dataclass
class BuildData:
    """A sample of the training data: ``x`` features, ``y`` labels, ``frame`` the typed table when there is one.

    Every worker gets the same rows (the head of partition 0), so that state a builder derives from them
    (a ``StringLookup`` vocabulary, which a checkpoint does not carry) is the same on every worker.
    """

    x: Any
    y: Any
    frame: Any = None

    def value(self, name: str) -> Any:
        """The sample's ``x``, ``y`` or ``frame`` (names a ``bind_globals`` entry may use)."""
        if name not in BINDABLE:
            raise KeyError(name)
        return getattr(self, name)


def sample_of(x: Any, y: Any, frame: Any = None, rows: int = SAMPLE_ROWS) -> BuildData:
    """The first ``rows`` rows of a partition as a BuildData."""
    return BuildData(x[:rows], y[:rows], None if frame is None else frame[:rows])
