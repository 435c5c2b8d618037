"""What search_efficiency.py and peers.py share: the data every method trains on, running one method in its own
process while sampling its process tree's memory, the peer venv, and best-so-far curves."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
#: The runners that need Ray, hence the peer venv.
NEEDS_PEER_VENV = {"ray"}


def peers_python() -> str:
    """The peer venv's interpreter, built on first use by bench/peers_env.sh (idempotent)."""
    proc = subprocess.run(["bash", str(BENCH / "peers_env.sh")], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or not PEERS_PYTHON.exists():
        raise SystemExit(f"bench/peers_env.sh could not build .venv-peers:\n{proc.stderr[-3000:]}")
    return str(PEERS_PYTHON)


def prepare_data(workdir: Path, source: Path, workers: int) -> dict:
    """Register ``source`` with Hopper once and export its exact train/validation split for the peers."""
    import numpy as np

    from hopper.app import open_services
    from hopper.settings import Settings

    sys.path.insert(0, str(BENCH))
    from mop_vs_baselines import load_split

    home = workdir / "split"
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(source.parent,),
                        artifact_dir=home / "artifacts", workers=workers)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    services.register_dataset({"name": "bench", "path": str(source)})
    (x, y), (xv, yv), info = load_split(services, "bench")
    services.store.dispose()
    train, val = workdir / "train.npz", workdir / "val.npz"
    np.savez(train, x=x, y=y)
    np.savez(val, x=xv, y=yv)
    return {"source": str(source), "train": str(train), "val": str(val), "feature_shape": list(info.feature_shape),
            "n_outputs": info.n_outputs, "task": info.task, "n_train": int(info.n_train), "n_val": int(len(yv))}


class TreeMemory:
    """Samples the resident memory of a process and all its descendants (Ray's raylet, workers, pools...)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_total_mb = 0.0
        self.peak_process_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            sizes = []
            for p in procs:
                try:
                    sizes.append(p.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
            if sizes:
                self.peak_total_mb = max(self.peak_total_mb, sum(sizes))
                self.peak_process_mb = max(self.peak_process_mb, max(sizes))
            self._stop.wait(self.interval)


def run_method(spec: dict, workdir: Path, *, timeout: float = 7200) -> dict:
    """Run ``spec["runs"]`` with one runner (``spec["runner"]``) in a process of its own.

    Returns ``{"runs": {label: result}}`` with the process tree's peak memory and the end-to-end seconds
    (start-up included) of the whole process.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "home": str(workdir), "events_dir": str(workdir / "events")}
    spec_path, out_path = workdir / "spec.json", workdir / "result.json"
    spec_path.write_text(json.dumps(spec))
    python = peers_python() if spec["runner"] in NEEDS_PEER_VENV else sys.executable
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    with open(workdir / "stderr.log", "w") as err:
        proc = subprocess.Popen([python, str(BENCH / "_peer_methods.py"), str(spec_path), str(out_path)],
                                stdout=err, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        with TreeMemory(proc.pid) as memory:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    if code != 0 or not out_path.exists():
        tail = (workdir / "stderr.log").read_text()[-4000:]
        raise RuntimeError(f"{spec['runner']} ({', '.join(r['label'] for r in spec['runs'])}) failed ({code}):\n{tail}")
    result = json.loads(out_path.read_text())
    result.update(end_to_end_s=time.time() - t0, peak_rss_tree_mb=round(memory.peak_total_mb, 1),
                  peak_rss_process_mb=round(memory.peak_process_mb, 1))
    return result


def curve(result: dict) -> list[dict]:
    """Best-so-far validation accuracy at each epoch end, against seconds since the method was ready and against
    the compute (worker-seconds) spent up to then."""
    rows, best, compute = [], 0.0, 0.0
    for e in sorted(result["events"], key=lambda e: e["t"]):
        compute += e["compute"]
        best = max(best, e["acc"])
        rows.append({"wall": e["t"] - result["ready_at"], "compute": compute, "best": best})
    return rows


def time_to(rows: list[dict], threshold: float, key: str = "wall") -> float | None:
    """The first ``key`` (wall or compute) at which the best-so-far reached ``threshold``; None if never."""
    for r in rows:
        if r["best"] >= threshold - 1e-9:
            return r[key]
    return None


def spread(values: list[float]) -> dict:
    """Mean, standard deviation (0 for one value), min and max of repeated measurements."""
    values = [float(v) for v in values]
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4), "max": round(max(values), 4), "n": len(values)}
