"""The edge agent: runs on a device, profiles TFLite exports on a real interpreter, reports to Hopper.

    hopper edge-agent --server http://hopper:8050 --enrol-token E --name pi-4 [--interpreter ai-edge-litert]
    python agent.py --server ... (this file alone also works: it needs only requests, numpy and an interpreter)

It enrols once with a one-time enrolment token (``hopper device enrol-token`` on the server), receives its own
device token, keeps it in ``<workdir>/device-token`` (0600) and uses only that from then on: a device token can
heartbeat, claim, report and download the jobs of this device and nothing else. It registers with a hardware
description, heartbeats (which keeps the leases of its jobs alive), polls for
profiling jobs, downloads each ``.tflite`` and checks its sha256 (downloading again on a mismatch, failing the
job after ``--download-retries``), measures latency p50/p95 over ``--runs`` invocations after ``--warmup``
on random inputs of the model's input shapes and dtypes, the model size, the peak resident-memory increase,
and energy where Linux RAPL (``/sys/class/powercap``) is readable, and posts the result.

Imports only the standard library, requests, numpy, psutil (if present) and the chosen interpreter: never
TensorFlow, SQLAlchemy or the Hopper engine, so that a small device can run it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

log = logging.getLogger("hopper.edge_deploy.agent")

INTERPRETERS = {"tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
                "ai-edge-litert": ("ai_edge_litert.interpreter", "ai-edge-litert")}
RAPL_ROOT = Path("/sys/class/powercap")


class ChecksumMismatch(Exception):
    pass


# -- measuring (also used by bench/edge_profile.py) -------------------------------------------------------
def load_interpreter(name: str):  # noqa: ANN201
    """The ``Interpreter`` class of ``tflite-runtime`` or ``ai-edge-litert``."""
    import importlib

    if name not in INTERPRETERS:
        raise ValueError(f"interpreter must be one of {', '.join(INTERPRETERS)}, not {name!r}")
    return importlib.import_module(INTERPRETERS[name][0]).Interpreter


def interpreter_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(INTERPRETERS[name][1])
    except PackageNotFoundError:
        return None


def current_rss() -> int | None:
    """This process's resident memory in bytes (psutil, else /proc)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss() -> int | None:
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib * 1024 if sys.platform != "darwin" else kib
    except ImportError:
        return None


def rapl_energy_uj() -> int | None:
    """Summed package energy counters in microjoules, or None where RAPL is absent or unreadable."""
    try:
        files = sorted(RAPL_ROOT.glob("intel-rapl:*/energy_uj"))
        if not files:
            return None
        return sum(int(f.read_text()) for f in files)
    except (OSError, ValueError):
        return None


def random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    shape = [d if d > 0 else 1 for d in detail.get("shape_signature", detail["shape"])]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.random(size=shape).astype(dtype)


def measure(model: bytes, *, interpreter: str = "ai-edge-litert", runs: int = 100, warmup: int = 10,
            threads: int | None = None, seed: int = 0) -> dict:
    """Latency p50/p95 (ms), size, peak memory increase and energy of one model on this machine."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    rss_before, peak_before = current_rss(), peak_rss()
    Interpreter = load_interpreter(interpreter)  # noqa: N806
    kwargs = {"num_threads": threads} if threads else {}
    interp = Interpreter(model_content=model, **kwargs)
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    inputs = interp.get_input_details()
    for detail in inputs:
        interp.set_tensor(detail["index"], random_input(detail, rng))
    for _ in range(warmup):
        interp.invoke()
    energy_before = rapl_energy_uj()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    energy_after = rapl_energy_uj()
    rss_after, peak_after = current_rss(), peak_rss()
    peak_memory = None
    if rss_before is not None and rss_after is not None:
        peak_memory = max(0, rss_after - rss_before)
        if peak_after is not None and peak_before is not None and peak_after > peak_before:
            peak_memory = max(peak_memory, peak_after - rss_before)
    energy_mj = None
    if energy_before is not None and energy_after is not None and energy_after >= energy_before:
        energy_mj = (energy_after - energy_before) / 1000.0 / runs  # millijoules per inference (whole package)
    out = interp.get_output_details()
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p95_ms": float(np.percentile(times, 95)),
            "latency_mean_ms": float(times.mean()), "latency_min_ms": float(times.min()), "size_bytes": len(model),
            "peak_memory_bytes": peak_memory, "energy_mj": energy_mj, "runs": runs, "warmup": warmup,
            "interpreter": interpreter, "interpreter_version": interpreter_version(interpreter),
            "inputs": [{"shape": [int(d) for d in i["shape"]], "dtype": np.dtype(i["dtype"]).name} for i in inputs],
            "outputs": [{"shape": [int(d) for d in o["shape"]], "dtype": np.dtype(o["dtype"]).name} for o in out]}


def hardware_description(interpreter: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        import psutil

        memory = int(psutil.virtual_memory().total)
    except ImportError:
        try:
            kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:"))
            memory = kib * 1024
        except (OSError, StopIteration, ValueError):
            pass
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_bytes": memory, "python": platform.python_version(),
            "interpreter": interpreter, "interpreter_version": interpreter_version(interpreter),
            "energy": "rapl" if rapl_energy_uj() is not None else None, "hostname": platform.node()}


# -- the agent loop -------------------------------------------------------------------------------------
class Agent:
    """One device's connection to Hopper: register, heartbeat, claim, download, measure, report."""

    def __init__(self, server: str, token: str | None, name: str, *, interpreter: str = "ai-edge-litert",
                 runs: int = 100, warmup: int = 10, poll: float = 2.0, heartbeat: float = 5.0,
                 download_retries: int = 3, threads: int | None = None, workdir: Path | None = None,
                 enrol_token: str | None = None) -> None:
        load_interpreter(interpreter)  # fail now, not at the first job, when it is not installed
        self.api = server.rstrip("/") + "/api/v1"
        self.server = server.rstrip("/")
        self.name, self.interpreter = name, interpreter
        self.runs, self.warmup, self.poll, self.threads = runs, warmup, poll, threads
        self.heartbeat_interval = heartbeat
        self.download_retries = max(1, download_retries)
        self.workdir = Path(workdir or Path.home() / ".hopper-agent" / name)
        self.session = requests.Session()
        self.enrol_token = enrol_token
        self.token_file = self.workdir / "device-token"
        token = token or self._saved_token()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.device_id: int | None = None
        self.current_job: int | None = None
        self.stop_event = threading.Event()
        self.completed = 0

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:  # noqa: ANN003
        response = self.session.request(method, self.api + path, timeout=kwargs.pop("timeout", 30), **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise requests.HTTPError(f"{method} {path}: HTTP {response.status_code}: {message}", response=response)
        return response

    def _saved_token(self) -> str | None:
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None

    def _save_token(self, token: str) -> None:
        """Keep the device token for restarts: 0600, written aside and renamed into place."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.token_file.with_name(".device-token.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        os.replace(tmp, self.token_file)

    def register(self) -> dict:
        """Register (refresh) this device; with no usable device token, enrol with the enrolment token first."""
        body = {"name": self.name, "interpreter": self.interpreter,
                "hardware": hardware_description(self.interpreter)}
        if "Authorization" in self.session.headers or not self.enrol_token:
            try:
                device = self._call("POST", "/devices", json=body).json()
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in (401, 403) or not self.enrol_token:
                    raise
                log.warning("the device token was refused (%s); enrolling again", exc)
                device = self._enrol(body)
        else:
            device = self._enrol(body)
        self.device_id = device["id"]
        log.info("registered as device %s (%s)", self.device_id, self.name)
        return device

    def _enrol(self, body: dict) -> dict:
        response = self.session.post(self.api + "/devices", json=body, timeout=30,
                                     headers={"Authorization": f"Bearer {self.enrol_token}"})
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise requests.HTTPError(f"enrolment: HTTP {response.status_code}: {message}", response=response)
        device = response.json()
        token = device.pop("token")
        self._save_token(token)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.enrol_token = None  # spent
        log.info("enrolled as device %s; its token is in %s", device["id"], self.token_file)
        return device

    def _heartbeats(self) -> None:
        while not self.stop_event.wait(self.heartbeat_interval):
            try:
                beat = self._call("POST", f"/devices/{self.device_id}/heartbeat", timeout=10).json()
                lease = float(beat.get("lease_seconds") or 0)
                if lease > 0:
                    self.heartbeat_interval = min(self.heartbeat_interval, max(0.1, lease / 3))
            except requests.RequestException as exc:
                log.warning("heartbeat failed: %s", exc)

    def download(self, job: dict) -> bytes:
        """The export's bytes, verified against the recorded sha256 (downloaded again on a mismatch)."""
        export = job["export"]
        expected = export["sha256"]
        last = ""
        for attempt in range(1, self.download_retries + 1):
            response = self.session.get(self.server + export["artifact"], timeout=120)
            if response.status_code >= 400:
                raise requests.HTTPError(f"download of export {export['id']}: HTTP {response.status_code}",
                                         response=response)
            header = response.headers.get("X-Hopper-SHA256")
            if header and header != expected:
                log.warning("export %s: the server's checksum header %s differs from the job's %s",
                            export["id"], header, expected)
            blob = response.content
            got = hashlib.sha256(blob).hexdigest()
            if got == expected:
                return blob
            last = got
            log.warning("export %s: checksum mismatch on download %d/%d (expected %s, got %s); retrying",
                        export["id"], attempt, self.download_retries, expected[:12], got[:12])
            time.sleep(min(2.0, 0.2 * attempt))
        raise ChecksumMismatch(f"checksum mismatch on all {self.download_retries} downloads of export "
                               f"{export['id']}: expected sha256 {expected}, got {last}")

    def process(self, job: dict) -> None:
        self.current_job = job["id"]
        try:
            blob = self.download(job)
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / f"export-{job['export']['id']}.tflite").write_bytes(blob)
            result = measure(blob, interpreter=self.interpreter, runs=job.get("runs") or self.runs,
                             warmup=job["warmup"] if job.get("warmup") is not None else self.warmup,
                             threads=self.threads)
            result["hardware"] = {"device": self.name, "cores": os.cpu_count()}
            self._call("POST", f"/jobs/{job['id']}/complete", json={"device_id": self.device_id, "result": result})
            self.completed += 1
            log.info("job %s: export %s p50 %.3f ms p95 %.3f ms", job["id"], job["export"]["id"],
                     result["latency_p50_ms"], result["latency_p95_ms"])
        except ChecksumMismatch as exc:
            self._fail(job, str(exc))
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 409:
                log.warning("job %s: %s (the lease was lost; dropping the job)", job["id"], exc)
            else:
                self._fail(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - an unprofilable model must not kill the agent
            self._fail(job, f"{type(exc).__name__}: {exc}")
        finally:
            self.current_job = None

    def _fail(self, job: dict, message: str) -> None:
        log.error("job %s failed: %s", job["id"], message)
        try:
            self._call("POST", f"/jobs/{job['id']}/fail", json={"device_id": self.device_id, "error": message})
        except requests.RequestException as exc:
            log.warning("could not report the failure of job %s: %s", job["id"], exc)

    def run(self, *, max_jobs: int | None = None) -> None:
        backoff = self.poll
        while not self.stop_event.is_set():
            try:
                self.register()
                break
            except requests.RequestException as exc:
                log.warning("cannot register with %s: %s (retrying)", self.server, exc)
                self.stop_event.wait(backoff)
                backoff = min(30.0, backoff * 2)
        threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True).start()
        while not self.stop_event.is_set() and (max_jobs is None or self.completed < max_jobs):
            try:
                job = self._call("POST", f"/devices/{self.device_id}/claim").json()["job"]
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    self.register()  # the server forgot us (fresh store): register again
                    continue
                log.warning("claim failed: %s", exc)
                job = None
            except requests.RequestException as exc:
                log.warning("claim failed: %s", exc)
                job = None
            if job is None:
                self.stop_event.wait(self.poll)
                continue
            self.process(job)

    def shutdown(self) -> None:
        """Give back the job in hand and sign off, so the server stops sending work here at once."""
        self.stop_event.set()
        if self.device_id is None:
            return
        if self.current_job is not None:
            try:
                self._call("POST", f"/jobs/{self.current_job}/release", json={"device_id": self.device_id},
                           timeout=5)
            except requests.RequestException:
                pass
        try:
            self._call("POST", f"/devices/{self.device_id}/offline", timeout=5)
        except requests.RequestException:
            pass  # the lease and the offline timeout cover a server we cannot reach


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hopper edge-agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="Hopper's URL, e.g. http://hopper:8050")
    p.add_argument("--enrol-token", default=os.environ.get("HOPPER_ENROL_TOKEN"),
                   help="one-time enrolment token from `hopper device enrol-token` (or HOPPER_ENROL_TOKEN); "
                        "needed once, then the device token saved in the workdir is used")
    p.add_argument("--token", default=os.environ.get("HOPPER_TOKEN"),
                   help="a device token (or HOPPER_TOKEN); default: the one saved in the workdir at enrolment")
    p.add_argument("--name", default=platform.node() or "edge", help="this device's name")
    p.add_argument("--interpreter", choices=sorted(INTERPRETERS), default="ai-edge-litert")
    p.add_argument("--runs", type=int, default=100, help="timed invocations per profile")
    p.add_argument("--warmup", type=int, default=10, help="untimed invocations first")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls when idle")
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats (at most lease/3)")
    p.add_argument("--download-retries", type=int, default=3, help="downloads before a checksum failure")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: its own)")
    p.add_argument("--max-jobs", type=int, default=None, help="exit after this many profiles")
    p.add_argument("--workdir", default=None, help="where downloaded models are kept")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s agent %(levelname)s %(message)s")
    agent = Agent(args.server, args.token, args.name, interpreter=args.interpreter, runs=args.runs,
                  warmup=args.warmup, poll=args.poll, heartbeat=args.heartbeat, download_retries=args.download_retries,
                  threads=args.threads, workdir=Path(args.workdir) if args.workdir else None,
                  enrol_token=args.enrol_token)

    def _stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)  # the finally below signs off

    signal.signal(signal.SIGTERM, _stop)
    print(f"edge agent {args.name}: {args.interpreter} {interpreter_version(args.interpreter)}, "
          f"server {args.server}", flush=True)
    try:
        agent.run(max_jobs=args.max_jobs)
    except KeyboardInterrupt:
        pass
    finally:
        agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
