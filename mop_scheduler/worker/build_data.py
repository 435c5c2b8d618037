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


def with_labels(frame: Any, y: Any, names: list[str] | None) -> Any:
    """The typed table a script reads as ``train_dataframe``, with its label column(s) as the source file had
    them (keras.io's examples ``pop`` the target from it), holding the labels as Hopper trains on them."""
    if frame is None or not names:
        return frame
    import numpy as np

    frame = frame.copy()
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == len(names) and len(names) > 1:
        for i, name in enumerate(names):
            frame[name] = labels[:, i]
    elif labels.ndim == 1 or labels.shape[1] == 1:
        frame[names[0]] = labels.reshape(len(labels))
    else:  # one column holding a vector per row (one-hot or multi-hot lists)
        frame[names[0]] = list(labels)
    return frame
