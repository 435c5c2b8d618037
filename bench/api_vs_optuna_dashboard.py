"""Hopper's REST reads against optuna-dashboard's API on the same 1 000 trials, same machine, same clients.

Both stores hold the same search: 1 000 configs/trials with two hyperparameters and ten per-epoch values each
(Hopper: a workload in its SQLite store; Optuna: a study in an RDB SQLite storage). Both APIs are served by
waitress with 8 threads, each server pinned to CPU 1 while it is measured (`taskset`), and the load generator is
pinned to CPU 0, so the clients' own work does not eat into the server's CPU budget.

Two load shapes, each as interleaved repeats (Hopper, Optuna, Hopper, Optuna, ...):
- **closed loop** (`wrk`, a C load generator, 20 connections back to back): the servers' capacity; at saturation
  p95 is mostly queueing (about 20 x the service time), so compare the two, not against 50 ms.
- **pollers** (20 clients each issuing one request per second at random phase, like 20 open dashboards):
  the latency people see; the target is p95 < 50 ms for every read.

Endpoints: Optuna's study detail `GET /api/studies/1` (every trial, as its dashboard loads it) and its poll
`?after=990`; Hopper's configs page (100, as its UI asks), the same 1 000 configs in one page, one config with
its metrics, the workloads list and the sub-epoch log (columnar).

Usage: python bench/api_vs_optuna_dashboard.py [--repeats 3] [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402
from api_latency import populate  # noqa: E402

TOKEN = "bench-token"
#: How often the stand-in scheduler commits an epoch while the cached reads are polled (2 workers, ~1 s each).
COMMIT_INTERVAL_S = 0.5
HOPPER_SERVER = """
import sys
from waitress import serve
from hopper.settings import load_settings
from hopper.app import open_services
from hopper.rest import create_app
app = create_app(open_services(load_settings()), token=sys.argv[2], secret_key="x" * 32)
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""
OPTUNA_SERVER = """
import sys
from waitress import serve
from optuna.storages import RDBStorage
from optuna_dashboard import wsgi
serve(wsgi(RDBStorage(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""
WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  io.write(string.format("HOPPER_WRK p50=%%f p95=%%f requests=%%d errors=%%d\\n", latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def populate_optuna(url: str, n_trials: int, epochs: int) -> None:
    """The same search as Optuna sees it: one study, two params, one value and ``epochs`` intermediate values."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    study = optuna.create_study(storage=url, study_name="bench", direction="maximize")
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    units = optuna.distributions.CategoricalDistribution([32, 64])
    study.add_trials([optuna.trial.create_trial(
        params={"lr": rng.uniform(1e-4, 1e-2), "units": rng.choice([32, 64])},
        distributions={"lr": lr, "units": units}, value=rng.random(),
        intermediate_values={e: rng.random() for e in range(epochs)}) for _ in range(n_trials)])


def pinned(cpu: int) -> list[str]:
    """A ``taskset`` prefix pinning a process to one CPU (nothing on a one-CPU machine)."""
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def start(code: str, port: int, arg: str, env: dict) -> subprocess.Popen:
    import requests

    proc = subprocess.Popen([*pinned(1), sys.executable, "-c", code, str(port), arg], env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.2)


def closed_loop(url: str, seconds: float, connections: int, script: Path) -> dict:
    """p50/p95 (ms) and requests/s from wrk, pinned to CPU 0.

    One request first, not measured: optuna-dashboard builds its study cache on the first read, which 20
    connections at once would each wait on past wrk's default 2 s timeout (counted as errors, not latencies).
    wrk's own timeout is 30 s, so a slow answer is measured as slow instead of dropped.
    """
    import requests

    requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    out = subprocess.run([*pinned(0), "wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                          "-s", str(script), url],
                         capture_output=True, text=True, check=True, timeout=seconds + 90).stdout
    match = re.search(r"HOPPER_WRK p50=([\d.]+) p95=([\d.]+) requests=(\d+) errors=(\d+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no summary for {url}:\n{out}")
    p50, p95, n, errors = float(match[1]), float(match[2]), int(match[3]), int(match[4])
    if errors:
        raise RuntimeError(f"{url}: {errors} errors under load (wrk):\n{out}")
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "requests_per_s": round(n / seconds, 1)}


def pollers(url: str, seconds: float, clients: int, headers: dict) -> dict:
    """``clients`` threads, each one GET per second at a random phase; p50/p95 in ms."""
    import requests

    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the clients' threads stay off the server's CPU
    samples: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            session.headers.update(headers)
            session.get(url, timeout=30)  # connection set-up, not measured
            next_at = time.monotonic() + rng.random()
            end = time.monotonic() + seconds
            while next_at < end:
                time.sleep(max(0.0, next_at - time.monotonic()))
                t0 = time.perf_counter()
                r = session.get(url, timeout=30)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}")
                with lock:
                    samples.append(elapsed)
                next_at += 1.0

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{url}: {len(errors)} failed requests ({errors[0]})")
    samples.sort()
    return {"p50_ms": round(statistics.median(samples) * 1000, 2),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 2), "requests": len(samples)}


class Commits:
    """A stand-in for a running scheduler: commits one epoch of one config (new ``latest_metrics``, ``epochs_done``
    + 1, a version bump) every ``interval`` seconds, so that every cached read of the workload is out of date
    after each commit. Runs in the load generator's process, on its CPU."""

    def __init__(self, home: Path, interval: float) -> None:
        self.home, self.interval = home, interval
        self.stop = threading.Event()
        self.commits = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from sqlalchemy import select

        from hopper.engine.store import ConfigRow, Store

        store = Store(f"sqlite:///{self.home / 'hopper.db'}", check_schema=False)
        with store.session() as session:
            ids = list(session.scalars(select(ConfigRow.id)))
        rng = random.Random(1)
        while not self.stop.wait(self.interval):
            with store.session() as session:
                config = session.get(ConfigRow, rng.choice(ids))
                config.epochs_done += 1
                config.latest_metrics = {**config.latest_metrics, "val_accuracy": rng.random()}
            self.commits += 1
        store.dispose()

    def __enter__(self) -> Commits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(30)


def summarise(runs: list[dict]) -> dict:
    p95 = sorted(r["p95_ms"] for r in runs)
    return {"p95_ms_median": statistics.median(p95), "p95_ms_range": [p95[0], p95[-1]], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 configs, 1 repeat, 1 s")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.repeats, args.seconds, args.clients = 50, 1, 1.0, 4
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/install-test-deps.sh (apt-get install wrk)")
    from hopper.serve import free_port

    epochs = 10
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ids, _ = populate(home, args.configs, args.configs * epochs * 5)
        optuna_url = f"sqlite:///{home / 'optuna.db'}"
        populate_optuna(optuna_url, args.configs, epochs)
        script = home / "auth.lua"
        script.write_text(WRK_SCRIPT % TOKEN)
        env = {**os.environ, "HOPPER_HOME": str(home)}
        hopper_port, optuna_port = free_port(), free_port()
        hopper = start(HOPPER_SERVER, hopper_port, TOKEN, env)
        optuna = start(OPTUNA_SERVER, optuna_port, optuna_url, env)
        hb, ob = f"http://127.0.0.1:{hopper_port}", f"http://127.0.0.1:{optuna_port}"
        last = max(0, args.configs - 10)
        endpoints = {
            "optuna-dashboard GET /api/studies/1 (all trials)": ob + "/api/studies/1",
            f"optuna-dashboard GET /api/studies/1?after={last} (poll)": ob + f"/api/studies/1?after={last}",
            "hopper GET /workloads/1/configs (page of 100)": hb + "/api/v1/workloads/1/configs?limit=100&offset=300",
            f"hopper GET /workloads/1/configs (all {args.configs})": hb + f"/api/v1/workloads/1/configs?limit={args.configs}",
            "hopper GET /configs/{id} (all metrics)": hb + f"/api/v1/configs/{ids[len(ids) // 2]}",
            "hopper GET /workloads": hb + "/api/v1/workloads",
            "hopper GET /workloads/1/sub-epochs (1000 rows, columnar)": hb + "/api/v1/workloads/1/sub-epochs?limit=1000&columnar=1",
        }
        # The reads Hopper serves from its read cache, polled again while the store changes twice a second.
        cached = [k for k in endpoints if "/configs (" in k or "/sub-epochs" in k]
        closed: dict[str, list[dict]] = {k: [] for k in endpoints}
        polled: dict[str, list[dict]] = {k: [] for k in endpoints}
        changing: dict[str, list[dict]] = {k: [] for k in cached}
        commits = 0
        try:
            for _ in range(args.repeats):  # interleaved: every endpoint once per round
                for name, url in endpoints.items():
                    closed[name].append(closed_loop(url, args.seconds, args.clients, script))
                for name, url in endpoints.items():
                    polled[name].append(pollers(url, args.seconds, args.clients, {"Authorization": f"Bearer {TOKEN}"}))
                for name in cached:
                    with Commits(home, COMMIT_INTERVAL_S) as writer:
                        changing[name].append(pollers(endpoints[name], args.seconds, args.clients,
                                                      {"Authorization": f"Bearer {TOKEN}"}))
                    commits += writer.commits
        finally:
            for proc in (hopper, optuna):
                proc.terminate()
                proc.wait(10)
    closed_s = {k: summarise(v) for k, v in closed.items()}
    polled_s = {k: summarise(v) for k, v in polled.items()}
    changing_s = {k: summarise(v) for k, v in changing.items()}
    optuna_full = closed_s["optuna-dashboard GET /api/studies/1 (all trials)"]["p95_ms_median"]
    hopper_page = closed_s["hopper GET /workloads/1/configs (page of 100)"]["p95_ms_median"]
    hopper_all = closed_s[f"hopper GET /workloads/1/configs (all {args.configs})"]["p95_ms_median"]
    hopper_reads = [v["p95_ms_median"] for k, v in polled_s.items() if k.startswith("hopper")]
    emit("api_vs_optuna_dashboard", {
        "configs": args.configs, "clients": args.clients, "seconds_per_run": args.seconds, "repeats": args.repeats,
        "how": "waitress 8 threads per server pinned to CPU 1; load generator pinned to CPU 0; interleaved repeats",
        "closed_loop_wrk": closed_s, "pollers_1_per_s": polled_s,
        "pollers_1_per_s_while_the_store_changes": {
            "how": f"a config's epoch committed every {COMMIT_INTERVAL_S:g} s ({commits} commits in all), so each "
                   "cached body is out of date after each commit", "reads": changing_s},
        "targets": {
            "configs page p95 <= optuna-dashboard study p95 (closed loop)": {
                "value": round(hopper_page / optuna_full, 3), "target": 1.0, "met": hopper_page <= optuna_full},
            "all configs p95 <= optuna-dashboard study p95 (closed loop, same content)": {
                "value": round(hopper_all / optuna_full, 3), "target": 1.0, "met": hopper_all <= optuna_full},
            "every Hopper read p95 < 50 ms (20 pollers)": {
                "value": max(hopper_reads), "target": 50, "met": max(hopper_reads) < 50},
            "every cached Hopper read p95 < 50 ms (20 pollers, store changing)": {
                "value": max(v["p95_ms_median"] for v in changing_s.values()), "target": 50,
                "met": max(v["p95_ms_median"] for v in changing_s.values()) < 50},
        },
    }, write=not args.quick)


if __name__ == "__main__":
    main()
