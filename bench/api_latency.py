"""Latency of the main REST read endpoints under concurrent clients, on a populated SQLite store.

The store gets 1 000 configs in one workload with 50 000 metric rows (and a sub-epoch log), the
API is served by waitress in its own process on loopback, and C client threads issue R requests
each per endpoint. Reports p50/p95 per endpoint and, as an in-run baseline, the ratio to a static
endpoint served by the same stack (the OpenAPI document). Target: p95 < 50 ms on SQLite.

Usage: python bench/api_latency.py [--configs N] [--metrics M] [--clients C] [--requests R] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, seed_workload  # noqa: E402

SERVER = """
import sys
from waitress import serve
from hopper.settings import load_settings
from hopper.app import open_services
from hopper.rest import create_app
app = create_app(open_services(load_settings()), token="bench-token", secret_key="x" * 32)
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""


def populate(home: Path, n_configs: int, n_metrics: int) -> tuple[list[int], int]:
    from sqlalchemy import select

    from hopper.engine.store import (
        ConfigRow,
        MetricRow,
        Store,
        SubEpochRow,
        utcnow,
    )

    store = Store(f"sqlite:///{home / 'hopper.db'}", check_schema=False)
    store.upgrade()
    rng = random.Random(0)
    wid = seed_workload(store, "bench", partitions=2, feature_shape=[64], classes=10, max_epochs=100)
    epochs = max(1, n_metrics // (n_configs * 5))
    t0 = utcnow()
    names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
    with store.session() as s:
        s.add_all(ConfigRow(workload_id=wid, hparams={"lr": rng.random() / 100, "units": rng.choice([32, 64])},
                            status=rng.choice(["running", "done", "stopped"]), epochs_done=epochs,
                            latest_metrics={"epoch": epochs - 1, **{n: rng.random() for n in names}},
                            best_objective=rng.random())
                  for _ in range(n_configs))
    with store.session() as s:
        ids = [c for (c,) in s.execute(select(ConfigRow.id))]
        rows, subs = [], []
        for cid in ids:
            for e in range(epochs):
                for name in names:
                    rows.append({"config_id": cid, "epoch": e, "name": name, "value": rng.random(), "at": t0})
                for p in (0, 1):
                    start = t0 + timedelta(seconds=len(subs))
                    subs.append({"config_id": cid, "epoch": e, "partition": p, "worker": f"local-{p}",
                                 "started_at": start, "finished_at": start + timedelta(seconds=1), "outcome": "ok"})
        s.execute(MetricRow.__table__.insert(), rows)
        s.execute(SubEpochRow.__table__.insert(), subs)
    store.dispose()
    return ids, len(rows)


def timed_get(session, url: str) -> float:
    t0 = time.perf_counter()
    r = session.get(url, timeout=30)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="per client per endpoint")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.metrics, args.clients, args.requests = 100, 5_000, 4, 5
    import requests

    from hopper.serve import free_port

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ids, n_metrics = populate(home, args.configs, args.metrics)
        port = free_port()
        env = {**os.environ, "HOPPER_HOME": str(home)}
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(base + "/api/openapi.json", timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            endpoints = {
                "static baseline: GET /api/openapi.json": lambda r: "/api/openapi.json",
                "GET /api/v1/workloads": lambda r: "/api/v1/workloads",
                "GET /api/v1/workloads/1/configs (page of 100)": lambda r: f"/api/v1/workloads/1/configs?limit=100&offset={r.randrange(0, max(1, len(ids) - 100))}",
                "GET /api/v1/configs/{id} (all metrics)": lambda r: f"/api/v1/configs/{r.choice(ids)}",
                "GET /api/v1/workloads/1/sub-epochs (1000 rows)": lambda r: "/api/v1/workloads/1/sub-epochs?limit=1000",
                "GET /api/v1/events": lambda r: "/api/v1/events?limit=100",
            }
            results = {}
            for name, make in endpoints.items():
                def client(seed: int, make=make) -> list[float]:
                    rng = random.Random(seed)
                    with requests.Session() as session:
                        session.headers["Authorization"] = "Bearer bench-token"
                        timed_get(session, base + make(rng))  # connection set-up, not measured
                        return [timed_get(session, base + make(rng)) for _ in range(args.requests)]
                with ThreadPoolExecutor(args.clients) as pool:
                    samples = [t for ts in pool.map(client, range(args.clients)) for t in ts]
                samples.sort()
                results[name] = {"requests": len(samples),
                                 "p50_ms": round(statistics.median(samples) * 1000, 2),
                                 "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 2)}
        finally:
            server.terminate()
            server.wait(10)
    floor = results["static baseline: GET /api/openapi.json"]["p95_ms"]
    for row in results.values():
        row["p95_vs_static"] = round(row["p95_ms"] / floor, 2) if floor else None
    data_rows = [v for k, v in results.items() if not k.startswith("static")]
    emit("api_latency", {"store": "sqlite", "configs": len(ids), "metric_rows": n_metrics, "clients": args.clients,
                         "server": "waitress, 8 threads, separate process", "target_p95_ms": 50,
                         "meets_target": all(r["p95_ms"] < 50 for r in data_rows), "endpoints": results},
         write=not args.quick)


if __name__ == "__main__":
    main()
