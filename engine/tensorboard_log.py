"""Per-config TensorBoard scalars, written without importing TensorFlow.

TensorBoard's ``EventFileWriter`` goes through ``tensorboard.compat.tf``, which imports the real
TensorFlow when it is installed: 5 s and hundreds of MB in the scheduler process. The event file
format is just TFRecord-framed ``Event`` protos, so this writes them with TensorBoard's own
``RecordWriter`` and protos.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


def write_scalars(logdir: str | Path, step: int, scalars: dict[str, float]) -> Path:
    """Write one event file holding ``scalars`` at ``step``; returns its path."""
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = logdir / f"events.out.tfevents.{now:.6f}.{socket.gethostname()}.hopper.{step}"
    with open(path, "wb") as fh:
        writer = RecordWriter(fh)
        writer.write(event_pb2.Event(wall_time=now, step=step, file_version="brain.Event:2").SerializeToString())
        values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value)) for name, value in scalars.items()]
        writer.write(event_pb2.Event(wall_time=now, step=step,
                                     summary=summary_pb2.Summary(value=values)).SerializeToString())
        writer.flush()
    return path
