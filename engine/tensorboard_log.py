"""Per-config TensorBoard scalars, written without importing TensorFlow.

TensorBoard's ``EventFileWriter`` goes through ``tensorboard.compat.tf``, which imports the real
TensorFlow when it is installed: 5 s and hundreds of MB in the scheduler process. The event file
format is just TFRecord-framed ``Event`` protos, so this writes them with TensorBoard's own
``RecordWriter`` and protos.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.record_writer import RecordWriter

#: The suffix of the event file that holds a config's hyperparameters (one per config directory).
HPARAMS_SUFFIX = ".hopper.hparams"


def _write_event_file(logdir: Path, suffix: str, step: int, summary: summary_pb2.Summary) -> Path:
    logdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = logdir / f"events.out.tfevents.{now:.6f}.{socket.gethostname()}{suffix}"
    with open(path, "wb") as fh:
        writer = RecordWriter(fh)
        writer.write(event_pb2.Event(wall_time=now, step=step, file_version="brain.Event:2").SerializeToString())
        writer.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
        writer.flush()
    return path


def write_scalars(logdir: str | Path, step: int, scalars: dict[str, float]) -> Path:
    """Write one event file holding ``scalars`` at ``step``; returns its path."""
    values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value)) for name, value in scalars.items()]
    return _write_event_file(Path(logdir), f".hopper.{step}", step, summary_pb2.Summary(value=values))


def write_hparams(logdir: str | Path, hparams: dict[str, Any], trial_id: str) -> Path | None:
    """Record a config's hyperparameters for TensorBoard's HParams dashboard, once per config directory
    (its table and parallel-coordinates view then join them with the epoch scalars of the same run).

    Values TensorBoard cannot hold (lists, dicts, None) are written as their JSON text. Returns the file
    written, or None when the directory already has one.
    """
    logdir = Path(logdir)
    if logdir.is_dir() and any(logdir.glob(f"*{HPARAMS_SUFFIX}")):
        return None
    values = {name: value if isinstance(value, bool | int | float | str) else json.dumps(value)
              for name, value in hparams.items()}
    return _write_event_file(logdir, HPARAMS_SUFFIX, 0, hparams_summary.hparams_pb(values, trial_id=trial_id))
