"""Elastic workers: a run that starts with one local worker and gets a second mid-way.

One workload (a grid of mlp configs on digits, more epochs than the run lasts) trains on one local worker for
a measuring window; then ``hopper workers add 1`` (the same service call, written to the store; the scheduler
applies it at its next step), and, once the new worker has committed its first sub-epoch, a second window of
the same length. Datasets are cut into 4 shards (max_workers 2 x shards_per_worker 2): one worker trains a
config on all 4 at once, two workers on 2 each, so besides sub-epochs per minute the rate of shard visits
(data actually trained on) and of whole epochs is reported for both windows. Also: seconds from the request to
the new worker's first sub-epoch start (its process starting and importing TensorFlow dominate) and to its
first commit (it also loaded its shards on first use). The second window opens once the new worker has trained
every config once (building each model there, as the warm-up did on the first worker); the time in between is
reported as its own window.

The machine's load is part of the numbers: on a shared 2-core machine the second worker competes with
everything else, so the speed-up says as much about the load as about Hopper.

Usage: python bench/elastic.py [--window SECONDS] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import emit  # noqa: E402

SPACE = {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01, 0.03]}, "units": {"type": "choice", "values": [16, 64]},
         "batch_size": 32}


def _rates(visits: list, start, end) -> dict:  # noqa: ANN001
    """Work committed in [start, end): sub-epochs, shard visits and whole epochs, per minute."""
    done = [v for v in visits if v.outcome == "ok" and v.finished_at is not None and start <= v.finished_at < end]
    minutes = max((end - start).total_seconds(), 1e-9) / 60
    shards = sum(len(v.shards) for v in done)
    return {"seconds": round(minutes * 60, 1), "sub_epochs": len(done),
            "sub_epochs_per_minute": round(len(done) / minutes, 2),
            "shard_visits_per_minute": round(shards / minutes, 2),
            "epochs_per_minute": round(shards / 4 / minutes, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured before and after the add")
    parser.add_argument("--quick", action="store_true", help="toy size: 10 s windows")
    args = parser.parse_args()
    window = 10.0 if args.quick else args.window

    from hopper.app import open_services
    from hopper.engine.demo import write_digits
    from hopper.engine.store.models import utcnow
    from hopper.mop_scheduler import Scheduler
    from hopper.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        data.mkdir(parents=True)
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(data,),
                            artifact_dir=home / "artifacts", workers=1, max_workers=2, shards_per_worker=2,
                            poll_interval=0.02)
        services = open_services(settings, check_schema=False)
        services.store.upgrade()
        services.register_dataset({"name": "digits", "path": str(write_digits(data))})
        workload = services.launch_workload({"name": "elastic", "model": "mlp", "dataset": "digits", "space": SPACE,
                                             "max_epochs": 1000, "seed": 0, "plan": "mop"})
        scheduler = Scheduler(services)
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run, kwargs={"stop_event": stop}, daemon=True)
        thread.start()

        def visits() -> list:
            return services.store.schedule.shard_visits(workload.id)

        def wait(predicate, what: str, timeout: float = 600) -> None:  # noqa: ANN001
            deadline = time.monotonic() + timeout
            while not predicate():
                if time.monotonic() > deadline or not thread.is_alive():
                    raise SystemExit(f"timed out waiting for {what}")
                time.sleep(0.05)

        try:
            # Warm-up: the first commit of every config (its model built once) before the window opens.
            wait(lambda: len({v.config_id for v in visits() if v.outcome == "ok"}) == 8, "every config's first commit")
            before_start = utcnow()
            time.sleep(window)
            before_end = added_at = utcnow()
            added_mono = time.monotonic()
            services.add_workers(1, actor="bench")
            wait(lambda: any(v.worker == "local-1" for v in visits()), "the new worker's first sub-epoch")
            first_start = time.monotonic() - added_mono
            wait(lambda: any(v.worker == "local-1" and v.outcome == "ok" for v in visits()),
                 "the new worker's first commit")
            first_commit = time.monotonic() - added_mono
            # The new worker builds and traces each config's model on its first visit (as the first did in the
            # warm-up): the second window opens once it has trained every config.
            wait(lambda: len({v.config_id for v in visits() if v.worker == "local-1" and v.outcome == "ok"}) == 8,
                 "every config's first commit on the new worker")
            after_start = utcnow()
            time.sleep(window)
            after_end = utcnow()
        finally:
            stop.set()
            thread.join(120)
        log = visits()
        before, after = _rates(log, before_start, before_end), _rates(log, after_start, after_end)
        ramp = _rates(log, added_at, after_start)
        started_on_new = [v for v in log if v.worker == "local-1"]
        emit("elastic", {
            "setup": {"dataset": "digits (1797 rows, 4 shards)", "model": "mlp", "configs": 8, "window_seconds": window,
                      "workers_before": 1, "workers_after": 2, "quick": args.quick},
            "before_add": before,
            "while_the_new_worker_starts": ramp,
            "after_add": after,
            "speedup_shard_visits": round(after["shard_visits_per_minute"] / max(before["shard_visits_per_minute"],
                                                                                   1e-9), 2),
            "seconds_from_add_to_first_sub_epoch_start": round(first_start, 2),
            "seconds_from_add_to_first_sub_epoch_commit": round(first_commit, 2),
            "new_worker_first_shards": list(started_on_new[0].shards) if started_on_new else [],
            "lost_or_failed": sum(1 for v in log if v.outcome not in ("ok", "running")),
        })


if __name__ == "__main__":
    main()
