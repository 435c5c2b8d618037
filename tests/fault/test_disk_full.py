"""The checkpoint disk fills up mid-run: sub-epochs fail cleanly, are retried with backoff, and the
workload finishes once there is room again. Needs root to mount a small tmpfs (CI runs as root)."""

import subprocess
from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.store import MetricRow
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow


def test_full_checkpoint_disk_is_retried_not_fatal(services, digits, settings):
    checkpoints = settings.artifact_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(checkpoints)], check=True)
    try:
        filler = checkpoints / "filler"
        with open(filler, "wb") as fh:  # take every byte the tmpfs has
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        workload = services.launch_workload({"name": "full", "model": "mlp", "dataset": "digits", "max_epochs": 2,
                                             "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}}})
        with RunningScheduler(services) as running:
            running.wait_for(lambda: any(s.outcome == "failed" for s in services.list_sub_epochs(workload.id)),
                             120, "a sub-epoch to hit the full disk")
            failed = [s for s in services.list_sub_epochs(workload.id) if s.outcome == "failed"]
            assert "No space left on device" in failed[0].detail
            assert all(c.status != "failed" for c in services.list_configs(workload.id))
            assert not list(checkpoints.glob("*/*/*.partial"))
            filler.unlink()
            running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the workload")
        assert all(c.status == "done" and c.epochs_done == 2 for c in services.list_configs(workload.id))
        with services.store.session() as s:
            assert set(Counter((m.config_id, m.epoch, m.name) for m in s.scalars(select(MetricRow))).values()) == {1}
    finally:
        subprocess.run(["umount", "-l", str(checkpoints)], check=False)
