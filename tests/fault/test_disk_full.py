"""The checkpoint disk fills up mid-run: sub-epochs fail cleanly, are retried with backoff, and the
workload finishes once there is room again. Needs root to mount a small tmpfs (CI runs as root).

The backoff is observed in the schedule log: after a config's 1st and 2nd failure in a row its next sub-epoch
starts no sooner than 2 and 4 s later (``2 ** failures`` over the last three outcomes; the 8 s after a 3rd,
and the cap, are asserted on the ledger in ``test_give_up_paths``, without another 8 s of waiting here).
"""

import subprocess
from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.store import MetricRow
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

BACKOFF = [2.0, 4.0]


def _failure_runs(sub_epochs, config_id):
    """The config's sub-epochs since its last success (oldest first)."""
    mine = [s for s in sub_epochs if s.config_id == config_id]
    last_ok = max((i for i, s in enumerate(mine) if s.outcome == "ok"), default=-1)
    return mine[last_ok + 1:]


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

        def failures_in_a_row():
            log = services.list_sub_epochs(workload.id)
            for config in services.list_configs(workload.id):
                run = _failure_runs(log, config.id)
                if len(run) >= len(BACKOFF) and all(s.outcome == "failed" for s in run[:len(BACKOFF)]):
                    return config.id, run[:len(BACKOFF)]
            return None

        with RunningScheduler(services) as running:
            config_id, failures = running.wait_for(failures_in_a_row, 240,
                                                   "a config to hit the full disk twice in a row")
            assert all("No space left on device" in s.detail for s in failures), failures[0].detail
            assert all(c.status != "failed" for c in services.list_configs(workload.id))
            assert not list(checkpoints.glob("*/*/*.partial"))
            filler.unlink()
            running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the workload")
        # each retry of that config waited out its backoff: 2 s after the 1st failure, 4 after the 2nd (the retry
        # that ran once the disk had room again)
        mine = [s for s in services.list_sub_epochs(workload.id) if s.config_id == config_id]
        first = mine.index(next(s for s in mine if s.id == failures[0].id))
        n = len(BACKOFF)
        for failed, retry, wait in zip(mine[first:first + n], mine[first + 1:first + n + 1], BACKOFF, strict=True):
            assert failed.outcome == "failed"
            gap = (retry.started_at - failed.finished_at).total_seconds()
            assert gap >= wait * 0.95, (failed.id, retry.id, gap, wait)
        assert all(c.status == "done" and c.epochs_done == 2 for c in services.list_configs(workload.id))
        with services.store.session() as s:
            assert set(Counter((m.config_id, m.epoch, m.name) for m in s.scalars(select(MetricRow))).values()) == {1}
    finally:
        subprocess.run(["umount", "-l", str(checkpoints)], check=False)
