"""Scheduler cost as the store grows: 10, 100, 1 000, 10 000 configs, on SQLite and PostgreSQL.

Measures (median of R repetitions) one scheduling decision (``Scheduler.plan`` for W idle workers:
which config each trains next) and one steady-state poll cycle (``Scheduler.step`` while every
worker is busy: poll, commit nothing, top up, dispatch nothing, finish check). Training is not
involved: the backend here is an in-memory stand-in whose workers are idle (decision) or busy
(poll cycle). Each store also holds 3 epochs x 5 metrics per config and the sub-epoch log, so the
cost would show if a query scanned metric rows. Target: decision < 50 ms at 10 000 configs.

Usage: python bench/scheduler_scale.py [--sizes 10,100,1000,10000] [--repeats R] [--no-postgres] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit, pyplot, save_figure, seed_workload  # noqa: E402

from hopper.mop_scheduler.backends import Backend  # noqa: E402

WORKERS = 8


class StandInBackend(Backend):
    """Workers that are all idle or all busy and never finish: isolates the scheduler's own cost."""

    name = "standin"

    def __init__(self, n_workers: int, busy: bool) -> None:
        super().__init__(n_workers)
        self.busy = busy

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def idle_workers(self) -> list[int]:
        return [] if self.busy else list(range(self.n_workers))

    def submit(self, worker, task) -> None:  # noqa: ANN001
        raise AssertionError("the benchmark never dispatches")

    def poll(self, timeout: float) -> list:
        return []


def populate(url: str, n: int) -> None:
    from hopper.engine.store import ConfigRow, MetricRow, Store, SubEpochRow, utcnow

    store = Store(url, check_schema=False)
    store.upgrade()
    rng = random.Random(n)
    wid = seed_workload(store, "scale", partitions=WORKERS, feature_shape=[4], classes=2, max_epochs=10)
    with store.session() as s:
        s.execute(ConfigRow.__table__.insert(), [
            {"workload_id": wid, "hparams": {"lr": rng.random()}, "status": rng.choice(["queued", "running", "done"]),
             "priority": rng.choice([0, 0, 0, 1]), "epochs_done": 3, "origin": "user", "latest_metrics": {},
             "created_at": utcnow(), "updated_at": utcnow(), "version": 1} for _ in range(n)])
    with store.session() as s:
        from sqlalchemy import select

        ids = list(s.scalars(select(ConfigRow.id)))
        now = utcnow()
        metrics, subs = [], []
        for cid in ids:
            for e in range(3):
                metrics += [{"config_id": cid, "epoch": e, "name": m, "value": rng.random(), "at": now}
                            for m in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")]
            for e in range(4):
                for p in range(WORKERS if e < 3 else rng.randrange(WORKERS)):
                    subs.append({"config_id": cid, "epoch": e, "partition": p, "worker": f"w{p}", "started_at": now,
                                 "finished_at": now, "outcome": "ok"})
        for start in range(0, len(metrics), 50_000):
            s.execute(MetricRow.__table__.insert(), metrics[start:start + 50_000])
        for start in range(0, len(subs), 50_000):
            s.execute(SubEpochRow.__table__.insert(), subs[start:start + 50_000])
    store.dispose()


def measure(url: str, n: int, repeats: int) -> dict:
    from hopper.engine.services import Services
    from hopper.engine.store import Store
    from hopper.mop_scheduler import Scheduler
    from hopper.settings import Settings

    populate(url, n)
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(home=tmp, database_url=url, data_roots=(tmp,), artifact_dir=tmp, workers=WORKERS,
                        poll_interval=0.0)
    services = Services(Store(url), settings)
    idle = Scheduler(services, StandInBackend(WORKERS, busy=False))
    busy = Scheduler(services, StandInBackend(WORKERS, busy=True))
    busy.recover()
    idle.recover()
    decisions, cycles = [], []
    plan = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan = idle.plan(list(range(WORKERS)))
        decisions.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        busy.step()
        cycles.append(time.perf_counter() - t0)
    services.store.dispose()
    return {"configs": n, "decision_ms": round(statistics.median(decisions) * 1000, 2),
            "poll_cycle_ms": round(statistics.median(cycles) * 1000, 2), "workers_assigned": len(plan)}


def plot(results: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for backend, rows in results.items():
        xs = [r["configs"] for r in rows]
        ax.plot(xs, [r["decision_ms"] for r in rows], marker="o", label=f"decision, {backend}")
        ax.plot(xs, [r["poll_cycle_ms"] for r in rows], marker="s", linestyle="--", label=f"poll cycle, {backend}")
    ax.axhline(50, color="#b42318", linewidth=0.8, label="50 ms target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("configs in the store")
    ax.set_ylabel("milliseconds")
    ax.set_title("Scheduler cost vs store size")
    ax.legend(fontsize=7)
    return save_figure(fig, "scheduler_scale.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [int(x) for x in args.sizes.split(",")]
    repeats = 2 if args.quick else args.repeats
    results: dict[str, list] = {"sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            results["sqlite"].append(measure(f"sqlite:///{tmp}/scale-{n}.db", n, repeats))
    if not args.no_postgres:
        from tests.support.postgres import start_postgres

        server = start_postgres()
        try:
            results["postgresql"] = [measure(server.create_database(f"scale_{n}"), n, repeats) for n in sizes]
        finally:
            server.stop()
    growth = {}
    for backend, rows in results.items():
        first, last = rows[0], rows[-1]
        growth[backend] = {"configs_ratio": last["configs"] / first["configs"],
                           "decision_ratio": round(last["decision_ms"] / first["decision_ms"], 1),
                           "poll_cycle_ratio": round(last["poll_cycle_ms"] / first["poll_cycle_ms"], 1)}
    emit("scheduler_scale", {"workers": WORKERS, "results": results, "growth_first_to_last": growth,
                             "plot": None if args.quick else plot(results),
                             "target_decision_ms_at_10000": 50,
                             "meets_target": all(r[-1]["decision_ms"] < 50 for r in results.values())
                             if sizes[-1] >= 10_000 else None}, write=not args.quick)


if __name__ == "__main__":
    main()
