"""The Spark backend: W long-lived worker tasks in one barrier-mode Spark stage, driven over RPC.

How it works (also in the README's architecture section):

* The scheduler runs in the Spark driver. A background thread submits one job whose only stage is
  a barrier stage of W tasks, so Spark gang-schedules all W on executors at once or none. Task
  ``i`` owns data partition ``i``: it reads that Parquet partition (and the validation split) once,
  through Petastorm, and keeps it in memory for the life of the task.
* Each task dials back to the driver over a ``multiprocessing.connection`` socket (an HMAC
  handshake with a per-run secret) and then loops: receive "train config C from checkpoint K for
  one sub-epoch", run it with the same ``SubEpochRunner`` as the local backend, send back the
  result (metrics and the path + sha256 of the new checkpoint). Checkpoints travel through the
  shared checkpoint directory, never through the channel, so a message is a few hundred bytes.
  A direct channel, rather than a queue table in the store, keeps the dispatch latency at a
  socket round trip and leaves the store to user-visible state.
* While a task trains, a thread in it sends a heartbeat every ``heartbeat_interval`` seconds.
  A task is lost when its socket closes (its Python worker or executor died) or when it has
  been silent for ``heartbeat_timeout`` seconds (a frozen executor, a network partition). Its
  in-flight sub-epoch comes back as ``Lost``; the scheduler commits nothing for it and re-runs it.
* A barrier stage fails as a whole: when one task dies Spark kills the others, and a failed
  barrier result stage fails its job. The driver thread then submits a new job, whose tasks
  reconnect and re-read their partitions; sub-epochs that were running on the surviving tasks
  are reported lost too and re-run. A hung sub-epoch (over ``sub_epoch_timeout``) is handled the
  same way: the job is cancelled and restarted and the config fails with the reason.
* Elastic: a barrier stage has a fixed number of tasks, so a change of W (``resize``, from
  ``hopper workers add/remove``) waits until the running sub-epochs are back (``now``: it does not),
  then cancels the job; the job thread resubmits it with the new W and the tasks re-read the shards the
  scheduler now gives them. When fewer than W tasks run for ``lost_executor_grace`` seconds (an
  executor was lost and did not come back, so the barrier stage cannot be scheduled), W shrinks by one
  instead of waiting forever.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener

from hopper.engine.store.schedule import REMOVED_DETAIL
from hopper.mop_scheduler.backends._base import Backend, Completion, Lost, drain
from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask
from hopper.mop_scheduler.worker.runner import worker_environment

log = logging.getLogger("hopper.mop_scheduler.spark")

#: Spark settings the backend needs on a session it creates (and checks on one it is given).
REQUIRED_CONF = {
    # A task's Python process holds TensorFlow, its data and the sandbox guard: it must not be
    # handed to another task afterwards.
    "spark.python.worker.reuse": "false",
    "spark.task.cpus": "1",
}

#: How long a barrier job waits for enough free task slots before it fails (Spark's default: 40 checks 15 s apart,
#: 10 minutes): after a lost executor the job thread must be free to resubmit with a smaller W soon.
BARRIER_SLOT_CHECK = {
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "5s",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "6",
}


@dataclass(frozen=True)
class TaskSettings:
    """What each Spark task needs to know; pickled into the task closure."""

    address: tuple[str, int]
    authkey: bytes
    run_id: str
    threads: int
    model_cache: int
    allowed_roots: tuple[str, ...]
    heartbeat_interval: float
    data_memory_mb: int = 0


def _worker_task(settings: TaskSettings, partition: int) -> None:
    """The body of one long-lived Spark task (runs in a Python worker on an executor)."""
    conn = Client(settings.address, authkey=settings.authkey)
    send_lock = threading.Lock()
    done = threading.Event()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    def heartbeat() -> None:
        while not done.wait(settings.heartbeat_interval):
            try:
                send(("heartbeat", partition))
            except OSError:
                return

    send(("hello", partition, os.getpid(), socket.gethostname(), settings.run_id))
    threading.Thread(target=heartbeat, name="hopper-heartbeat", daemon=True).start()
    try:
        # TensorFlow reads these when it is first imported, which happens below, in this process.
        os.environ.update(worker_environment(settings.threads))
        from hopper.engine.data import read_partition_petastorm
        from hopper.mop_scheduler.worker.runner import SubEpochRunner, configure_threads

        configure_threads(settings.threads)
        if settings.allowed_roots:
            from hopper.mop_scheduler.backends.local import WORKER_LIMITS
            from hopper.mop_scheduler.worker import hopper_package_roots
            from hopper.mop_scheduler.worker.sandbox import install_guard
            from hopper.mop_scheduler.worker.validate import apply_limits

            # Inside a Spark task only what a process may do to itself applies: rlimits and the audit hook. The
            # executor's Python worker is Spark's (its user, its network, its files), so no user switch, no
            # namespaces and no view; the channel to the driver is already open and the guard refuses new ones.
            apply_limits(WORKER_LIMITS)
            install_guard((*settings.allowed_roots, *hopper_package_roots()),
                          os.path.join(settings.allowed_roots[-1], "tmp", f"spark-{settings.run_id}-{partition}"))
            log.info("Spark task %d: sandbox: rlimits and audit hook only (no user switch, network namespace or "
                     "filesystem view inside a Spark task)", partition)
        runner = SubEpochRunner(partition, model_cache_size=settings.model_cache, reader=read_partition_petastorm,
                                data_memory_bytes=settings.data_memory_mb * 2**20)
        send(("ready", partition))
        while True:
            message = conn.recv()
            if message is None:
                return
            send(("result", partition, runner.run(message)))
    except EOFError:
        return  # the driver went away: end the task quietly
    finally:
        done.set()
        conn.close()


def _barrier_partition(settings: TaskSettings):  # noqa: ANN202 - a Spark mapPartitions function
    def run(_rows):  # noqa: ANN001, ANN202
        from pyspark import BarrierTaskContext

        _worker_task(settings, BarrierTaskContext.get().partitionId())
        return iter(())

    return run


@dataclass
class _Peer:
    conn: Connection
    pid: int
    host: str
    last_seen: float
    ready: bool = False
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class SparkBackend(Backend):
    """W worker tasks on a Spark cluster.

    Args:
        n_workers: number of workers (= data partitions = barrier tasks); the cluster needs that
            many free task slots.
        master: Spark master URL (``spark://host:7077``, ``local[W]``); ignored when ``spark`` is given.
        spark: an existing SparkSession to use (it is not stopped at shutdown).
        driver_host: address the tasks dial back to; the session's ``spark.driver.host`` by default.
        spark_conf: extra Spark settings for a session the backend creates.
        sub_epoch_timeout: seconds after which a running sub-epoch counts as hung.
        heartbeat_interval / heartbeat_timeout: a task silent for ``heartbeat_timeout`` seconds is lost.
        job_retry_limit: consecutive job failures (with no worker becoming ready in between)
            after which ``poll`` raises, instead of retrying forever against a broken cluster.
        lost_executor_grace: seconds with fewer than W tasks running after which W shrinks by one.
        model_cache, threads_per_worker, allowed_roots: as for ``LocalBackend``.
    """

    name = "spark"
    elastic = True

    def __init__(self, n_workers: int, *, master: str = "local[2]", spark=None,  # noqa: ANN001
                 driver_host: str | None = None, spark_conf: dict[str, str] | None = None,
                 sub_epoch_timeout: float = 1800.0, heartbeat_interval: float = 2.0,
                 heartbeat_timeout: float = 30.0, job_retry_limit: int = 5, model_cache: int = 32,
                 threads_per_worker: int = 1, allowed_roots: tuple[str, ...] = (),
                 lost_executor_grace: float = 120.0, data_memory_mb: int = 0) -> None:
        super().__init__(n_workers)
        self.lost_executor_grace = lost_executor_grace
        self.data_memory_mb = data_memory_mb
        #: the W asked for; differs from ``n_workers`` while a resize waits for running sub-epochs
        self._target = n_workers
        self._resizing = False  # the current job is being cancelled for a new W: its end is no failure
        self._short_since: float | None = None
        self.master = master
        self.spark_conf = dict(spark_conf or {})
        self.sub_epoch_timeout = sub_epoch_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.job_retry_limit = job_retry_limit
        self.model_cache = model_cache
        self.threads_per_worker = threads_per_worker
        self.allowed_roots = tuple(str(r) for r in allowed_roots)
        self._spark = spark
        self._own_spark = spark is None
        self._driver_host = driver_host
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._peers: dict[int, _Peer] = {}
        self._listener: Listener | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._job_group = f"hopper-mop-{secrets.token_hex(4)}"
        self._run_ids = itertools.count()
        self._run_id = ""
        self._job_failures = 0
        self._fatal: str | None = None
        self.jobs_started = 0
        self.started_at: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def _session(self):  # noqa: ANN202
        if self._spark is None:
            # PySpark launches executors' Python with $PYSPARK_PYTHON, read when the context starts.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            from pyspark.sql import SparkSession

            builder = SparkSession.builder.master(self.master).appName("hopper-mop")
            conf = {"spark.ui.showConsoleProgress": "false", **BARRIER_SLOT_CHECK, **REQUIRED_CONF,
                    **self.spark_conf}
            if self._driver_host:
                conf.setdefault("spark.driver.host", self._driver_host)
            for key, value in conf.items():
                builder = builder.config(key, value)
            self._spark = builder.getOrCreate()
        return self._spark

    def start(self) -> None:
        if self._listener is not None:
            return
        self.started_at = time.monotonic()
        spark = self._session()
        sc = spark.sparkContext
        reuse = sc.getConf().get("spark.python.worker.reuse", "true")
        if reuse.lower() != "false":
            raise ValueError("the Spark backend needs spark.python.worker.reuse=false (each task keeps "
                             "TensorFlow and a sandbox in its Python worker)")
        host = self._driver_host or sc.getConf().get("spark.driver.host", "127.0.0.1")
        self.open_channel(host)
        thread = threading.Thread(target=self._job_loop, name="hopper-spark-job", daemon=True)
        thread.start()
        self._threads.append(thread)

    def open_channel(self, host: str) -> tuple[str, int]:
        """Listen for the worker tasks on ``host`` (HMAC handshake with a fresh secret); returns the address.

        ``start`` calls it before submitting the barrier job; on its own it lets the driver's side of the
        channel (hello, ready, heartbeats, results, losses) run without a cluster.
        """
        self._authkey = secrets.token_bytes(32)
        self._listener = Listener((host, 0), authkey=self._authkey)
        self._stopping.clear()
        thread = threading.Thread(target=self._accept_loop, name="hopper-spark-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self._listener.address

    def _task_settings(self) -> TaskSettings:
        return TaskSettings(address=self._listener.address, authkey=self._authkey, run_id=self._run_id,
                            threads=self.threads_per_worker, model_cache=self.model_cache,
                            allowed_roots=self.allowed_roots, heartbeat_interval=self.heartbeat_interval,
                            data_memory_mb=self.data_memory_mb)

    def _job_loop(self) -> None:
        sc = self._spark.sparkContext
        while not self._stopping.is_set():
            self._run_id = f"{os.getpid()}-{next(self._run_ids)}"
            self.jobs_started += 1
            sc.setJobGroup(self._job_group, "Hopper MOP workers", interruptOnCancel=True)
            rdd = sc.parallelize(range(self.n_workers), self.n_workers).barrier()
            try:
                rdd.mapPartitions(_barrier_partition(self._task_settings())).collect()
                reason = "the worker tasks ended"
            except Exception as exc:  # noqa: BLE001 - any job failure: tasks are restarted
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self._stopping.is_set():
                return
            self._events.put(("job_ended", reason))
            # Back off a little more after each failure that never got a worker ready.
            time.sleep(min(1.0 * (self._job_failures + 1), 10.0))

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._stopping.is_set():
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - a bad handshake (wrong key) must not stop accepting
                log.warning("refused a connection to the Spark backend: %s", exc)
                continue
            threading.Thread(target=self._read_loop, args=(conn,), name="hopper-spark-peer", daemon=True).start()

    def _read_loop(self, conn: Connection) -> None:
        partition = None
        try:
            hello = conn.recv()
            if hello[0] != "hello" or hello[4] != self._run_id:
                conn.close()  # a task of an earlier job that Spark has not killed yet
                return
            partition = hello[1]
            self._events.put(("hello", partition, _Peer(conn, hello[2], hello[3], time.monotonic())))
            while True:
                self._events.put(conn.recv())
        except (EOFError, OSError, TypeError, ValueError) as exc:
            # TypeError/ValueError: the driver closed this connection itself (a lost or replaced task).
            if partition is not None:
                self._events.put(("closed", partition, conn, f"the Spark task's connection closed ({exc or 'EOF'})"))

    def shutdown(self) -> None:
        self._stopping.set()
        for peer in list(self._peers.values()):
            try:
                with peer.send_lock:
                    peer.conn.send(None)
            except OSError:
                pass
        if self._spark is not None:
            job_thread = next((t for t in self._threads if t.name == "hopper-spark-job"), None)
            if job_thread is not None:
                job_thread.join(10)
                if job_thread.is_alive():
                    self._spark.sparkContext.cancelJobGroup(self._job_group)
                    job_thread.join(30)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for peer in self._peers.values():
            peer.conn.close()
        self._peers.clear()
        self._running.clear()
        self._threads.clear()
        if self._own_spark and self._spark is not None:
            self._spark.stop()
            self._spark = None

    # -- elastic workers ------------------------------------------------------------------------
    def worker_ids(self) -> list[int]:
        return list(range(min(self._target, self.n_workers)))

    def draining(self) -> list[int]:
        return list(range(self._target, self.n_workers))

    def resize(self, n_workers: int, *, now: bool = False) -> None:
        """Change W: resubmit the barrier job with ``n_workers`` tasks once the running sub-epochs are back
        (``now``: at once; they are lost and re-run)."""
        if n_workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        if n_workers == self._target:
            return
        log.info("Spark workers: %d -> %d%s", self.n_workers, n_workers, " (now)" if now else "")
        self._target = n_workers
        if now or not self._running:
            self._apply_resize()

    def _apply_resize(self) -> None:
        self.n_workers = self._target
        self._resizing = True
        self._short_since = None
        self._restart_job()

    def _check_pool(self) -> None:
        """Apply a pending resize once nothing runs; shrink W when a lost executor does not come back."""
        if self._target != self.n_workers:
            if not self._running:
                self._apply_resize()
            return
        # Tasks that said hello, not those ready: a task says hello before it imports TensorFlow, so a job that
        # is merely starting is not mistaken for one whose barrier stage cannot get its slots.
        ready = len(self._peers)
        if ready >= self.n_workers or self.n_workers <= 1 or self._listener is None:
            self._short_since = None
            return
        now = time.monotonic()
        if self._short_since is None:
            self._short_since = now
        elif now - self._short_since > self.lost_executor_grace:
            log.warning("only %d of %d Spark tasks running for %g s (a lost executor did not come back): shrinking "
                        "to %d workers", ready, self.n_workers, self.lost_executor_grace, self.n_workers - 1)
            self._target = self.n_workers - 1
            self._apply_resize()

    # -- dispatch -------------------------------------------------------------------------------
    def idle_workers(self) -> list[int]:
        if self._target != self.n_workers:
            return []  # a resize waits for the running sub-epochs: start nothing new
        return [i for i, p in sorted(self._peers.items()) if p.ready and i not in self._running]

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until all W tasks run and have imported TensorFlow (useful before timing)."""
        deadline = time.monotonic() + timeout
        while len(self.idle_workers()) < self.n_workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.idle_workers())} of {self.n_workers} Spark tasks were ready "
                                   f"after {timeout:g} s")
            self._handle_events(0.2)

    def submit(self, worker: int, task: SubEpochTask) -> None:
        peer = self._peers.get(worker)
        if peer is None or not peer.ready or worker in self._running:
            raise RuntimeError(f"worker {worker} is not idle")
        self._running[worker] = (task, time.monotonic())
        try:
            with peer.send_lock:
                peer.conn.send(task)
        except OSError as exc:
            # Reported as lost by the next poll.
            self._events.put(("closed", worker, peer.conn, f"sending to the Spark task failed ({exc})"))

    def worker_pids(self) -> dict[int, int]:
        return {i: p.pid for i, p in self._peers.items()}

    def worker_name(self, worker: int) -> str:
        peer = self._peers.get(worker)
        return f"spark-{worker}@{peer.host}" if peer is not None else f"spark-{worker}"

    def _lose(self, worker: int, reason: str, out: list[Completion], *, fatal: bool = False, hung: bool = False) -> None:
        peer = self._peers.pop(worker, None)
        if peer is not None:
            peer.conn.close()
        running = self._running.pop(worker, None)
        if running is not None:
            out.append(Lost(running[0], worker, reason, hung=hung, fatal=fatal))

    def _handle_events(self, timeout: float) -> list[Completion]:
        out: list[Completion] = []
        for event in drain(self._events, timeout):
            kind = event[0]
            if kind == "hello":
                _, worker, peer = event
                if worker in self._peers:  # a new job's task replaces a stale one of the same partition
                    self._lose(worker, "the Spark task was replaced", out)
                self._peers[worker] = peer
            elif kind in ("ready", "heartbeat", "result") and event[1] in self._peers:
                peer = self._peers[event[1]]
                peer.last_seen = time.monotonic()
                if kind == "ready":
                    peer.ready = True
                    self._job_failures = 0
                elif kind == "result":
                    result: SubEpochResult = event[2]
                    running = self._running.get(event[1])
                    if running is not None and running[0].sub_epoch_id == result.sub_epoch_id:
                        del self._running[event[1]]
                        out.append(result)
            elif kind == "closed":
                _, worker, conn, reason = event
                peer = self._peers.get(worker)
                if peer is not None and peer.conn is conn:
                    log.warning("Spark worker %d lost: %s", worker, reason)
                    self._lose(worker, reason, out)
            elif kind == "job_ended":
                reason = event[1]
                if self._resizing:
                    # Cancelled for a new W: sub-epochs it held (a removal ``now``) are re-run, not counted.
                    self._resizing = False
                    log.info("the Spark job ended for a new worker count; resubmitting it with %d tasks",
                             self.n_workers)
                    for worker in list(self._peers):
                        self._lose(worker, REMOVED_DETAIL, out)
                    continue
                log.warning("the Spark job running the workers ended (%s); restarting it", reason)
                if not any(p.ready for p in self._peers.values()):
                    self._job_failures += 1
                for worker in list(self._peers):
                    self._lose(worker, f"the Spark job ended: {reason}", out)
                if self._job_failures >= self.job_retry_limit:
                    self._fatal = (f"the Spark job failed {self._job_failures} times in a row without a worker "
                                   f"becoming ready; last error: {reason}")
        return out

    def _restart_job(self) -> None:
        """Kill the running barrier job; the job thread submits a fresh one."""
        if self._spark is not None:
            self._spark.sparkContext.cancelJobGroup(self._job_group)

    def poll(self, timeout: float) -> list[Completion]:
        if self._fatal is not None:
            raise RuntimeError(self._fatal)
        out = self._handle_events(timeout)
        now = time.monotonic()
        restart = False
        for worker, peer in list(self._peers.items()):
            running = self._running.get(worker)
            if running is not None and now - running[1] > self.sub_epoch_timeout:
                reason = f"sub-epoch exceeded the {self.sub_epoch_timeout:g} s limit"
                self._lose(worker, reason, out, fatal=True, hung=True)
                restart = True
            elif now - peer.last_seen > self.heartbeat_timeout:
                self._lose(worker, f"no heartbeat from the Spark task for {self.heartbeat_timeout:g} s", out)
                restart = True
        if restart:
            log.warning("restarting the Spark worker tasks")
            self._restart_job()
        self._check_pool()
        return out
