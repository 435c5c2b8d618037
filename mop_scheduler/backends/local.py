"""The local backend: one long-lived OS process per worker, each holding the data shards it owns in memory.

Elastic: ``resize`` starts new worker processes (with new ids) or drains existing ones, while sub-epochs run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import glob
import logging
import multiprocessing as mp
import os
import queue
import signal
import tempfile
import time

from hopper.engine.store.schedule import REMOVED_DETAIL
from hopper.mop_scheduler.backends._base import Backend, Completion, Lost, drain
from hopper.mop_scheduler.worker.confine import Plan, hand_over, identity
from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask
from hopper.mop_scheduler.worker.runner import worker_environment
from hopper.mop_scheduler.worker.validate import Limits, apply_limits, kill_group

log = logging.getLogger("hopper.mop_scheduler.local")

#: Training workers: no address-space or CPU limit (HOPPER_WORKER_MEMORY_MB watches resident memory instead,
#: and training is long); files up to 16 GiB (checkpoints of large models); no core dumps.
WORKER_LIMITS = Limits(memory_mb=0, cpu_seconds=0, processes=0, file_mb=16384)
#: Seconds a (re)started worker may take to import TensorFlow and confine itself before it is killed and started
#: again: a worker that never reports ready would otherwise hold its slot (and any workload needing it) forever.
WORKER_START_TIMEOUT_S = 300.0
#: A hung worker is asked for its threads' Python stacks (faulthandler) before it is killed: the signal.
STACK_SIGNAL = signal.SIGUSR1


def innermost_frames(dump: str, frames: int = 3) -> str:
    """The innermost ``frames`` frames, innermost first, of the thread in a faulthandler dump that runs a sub-epoch
    (the one whose stack passes through Hopper's runner; else the longest): ``fn (file.py:12) < caller (...)``."""
    blocks = [b for b in dump.split("\n\n") if "File " in b]
    if not blocks:
        return ""
    block = next((b for b in blocks if "runner.py" in b), max(blocks, key=len))
    found = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("File "):
            # File "/path/x.py", line 12 in fn
            path, _, rest = line[len('File "'):].partition('", line ')
            number, _, function = rest.partition(" in ")
            found.append(f"{function} ({os.path.basename(path)}:{number})")
    return " < ".join(found[:frames])


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when the scheduler dies; exit now if it already has."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the getppid() check in the task loop still applies
    if os.getppid() != parent:
        os._exit(0)


def _worker_main(index: int, threads: int, tasks: mp.Queue, results: mp.Queue, model_cache: int,
                 allowed_roots: tuple[str, ...], parent: int, confinement: str = "", data_memory_mb: int = 0,
                 stack_path: str = "") -> None:
    # Contain user code: its own session and process group (killed as a whole), no core dumps, a file-size cap.
    os.setsid()
    sandbox = "sandbox: audit hook and rlimits only" if allowed_roots else "sandbox: rlimits only"
    if confinement:
        from hopper.mop_scheduler.worker import hopper_package_roots
        from hopper.mop_scheduler.worker.confine import Plan, enter

        # The OS layers (user, network namespace, filesystem view) while this process is still single-threaded
        # and before it imports anything of the user's.
        sandbox = enter(Plan.from_json(confinement), runtime=hopper_package_roots()).describe()
    if stack_path:
        # Opened before the audit hook is installed, kept open for the process's life: where a hung sub-epoch was.
        faulthandler.register(STACK_SIGNAL, file=open(stack_path, "w"), all_threads=True)  # noqa: SIM115
    # After the identity changed: Linux clears the parent-death signal when the credentials change.
    _die_with_parent(parent)
    apply_limits(WORKER_LIMITS)
    # TensorFlow reads these when it is first imported, which happens below, in this process.
    os.environ.update(worker_environment(threads))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides when workers stop
    from hopper.mop_scheduler.worker.runner import SubEpochRunner, configure_threads

    configure_threads(threads)
    if allowed_roots:
        from hopper.mop_scheduler.worker import hopper_package_roots
        from hopper.mop_scheduler.worker.sandbox import install_guard

        install_guard((*allowed_roots, *hopper_package_roots()), os.path.join(allowed_roots[-1], "tmp", f"worker-{index}"))
        import keras  # noqa: F401 - Hopper's own imports first: TensorFlow starts a helper process and uses ctypes
        import tensorflow  # noqa: F401

        from hopper.mop_scheduler.worker.sandbox import lock_down

        lock_down()  # from here the user's model code may not start processes or load native code
    runner = SubEpochRunner(index, model_cache_size=model_cache, data_memory_bytes=data_memory_mb * 2**20)
    results.put(("ready", index, (os.getpid(), sandbox)))
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                # The scheduler was killed (kill -9 leaves no chance to tell us): leave at once. A
                # normal exit would wait for the queue's feeder thread, which can block forever on a
                # pipe nobody drains any more.
                os._exit(0)
            continue
        if task is None:
            return
        results.put(("result", index, runner.run(task)))


class LocalBackend(Backend):
    """W worker processes on this machine.

    Args:
        n_workers: number of workers (= data partitions).
        threads_per_worker: TensorFlow intra/inter-op threads per worker (1 avoids
            over-subscribing cores when W processes train at once).
        sub_epoch_timeout: seconds after which a running sub-epoch counts as hung; its
            worker is killed and restarted.
        model_cache: models each worker keeps built (see ``SubEpochRunner``).
        data_memory_mb: memory each worker may spend on datasets it holds (LRU beyond it; 0 = no limit).
        memory_limit_mb: a worker whose resident memory passes this while training is killed and
            the config fails with the reason (0 = no limit).
        allowed_roots: directories user code in the workers may open files under (data roots, then
            the artefact dir last: it also holds the workers' private temp dirs); empty = no guard
            (see ``hopper.mop_scheduler.worker.sandbox``) and no OS confinement.
        sandbox_user: with ``allowed_roots``, workers confine themselves (``worker.confine``): this user,
            a network namespace unless checkpoints go to a URL, and a filesystem view of the data roots,
            the scripts and datasets under the artefact dir (read-only), the checkpoint dir and their own
            temp dir (read-write). Each layer applies where the machine allows (root, namespaces).
        checkpoint_dir: where workers write checkpoints (a directory or an fsspec URL).
    """

    name = "local"
    elastic = True

    def __init__(self, n_workers: int, *, threads_per_worker: int = 1, sub_epoch_timeout: float = 1800.0,
                 model_cache: int = 32, memory_limit_mb: int = 0, allowed_roots: tuple[str, ...] = (),
                 sandbox_user: str = "", checkpoint_dir: str | None = None, data_memory_mb: int = 0) -> None:
        super().__init__(n_workers)
        self.data_memory_mb = data_memory_mb
        self.sandbox_user = sandbox_user
        self.checkpoint_dir = checkpoint_dir
        #: Which sandbox layers the workers reported (one line, logged when it first appears or changes).
        self.sandbox = ""
        self._owner = identity(sandbox_user) if allowed_roots else None
        self.model_cache = model_cache
        self.memory_limit_mb = memory_limit_mb
        self.allowed_roots = tuple(str(r) for r in allowed_roots)
        self.threads_per_worker = threads_per_worker
        self.sub_epoch_timeout = sub_epoch_timeout
        self._ctx = mp.get_context("spawn")
        self._results: mp.Queue = self._ctx.Queue()
        self._procs: dict[int, mp.Process] = {}
        self._task_queues: dict[int, mp.Queue] = {}
        self._ready: set[int] = set()
        self._pids: dict[int, int] = {}
        self._removed_now: list[Lost] = []
        #: workers being removed: they take no new task and exit once their running sub-epoch is back
        self._draining: set[int] = set()
        #: processes told to exit -> the monotonic time by which they must have (else they are killed)
        self._exiting: dict[int, tuple[mp.Process, float]] = {}
        #: started workers that have not reported ready yet -> when they were started
        self._starting: dict[int, float] = {}
        self.start_timeout = WORKER_START_TIMEOUT_S

    def _confinement(self, index: int) -> str:
        """The worker's confinement plan (JSON); its directories are created and handed to the sandbox user."""
        if not self.allowed_roots:
            return ""
        *data_roots, artifacts = self.allowed_roots
        readable = [*data_roots]
        for name in ("scripts", "datasets"):  # created now: the view is made once, when the worker starts
            os.makedirs(os.path.join(artifacts, name), exist_ok=True)
            readable.append(os.path.join(artifacts, name))
        scratch = os.path.join(artifacts, "tmp", f"worker-{index}")
        hand_over(scratch, self._owner)
        writable = []
        remote = self.checkpoint_dir is not None and "://" in self.checkpoint_dir
        if self.checkpoint_dir is not None and not remote:
            hand_over(self.checkpoint_dir, self._owner)
            writable.append(self.checkpoint_dir)
        return Plan(user=self.sandbox_user, netns=not remote, readable=tuple(readable), writable=tuple(writable),
                    scratch=scratch).to_json()

    def _stack_path(self, index: int | str) -> str:
        """Where worker ``index`` writes its threads' stacks when asked (its scratch dir when confined); with
        ``"*"``, the pattern of every worker's."""
        if self.allowed_roots:
            return os.path.join(self.allowed_roots[-1], "tmp", f"worker-{index}", "stacks.txt")
        return os.path.join(tempfile.gettempdir(), f"hopper-{os.getpid()}-worker-{index}-stacks.txt")

    def _spawn(self, index: int) -> None:
        tasks = self._ctx.Queue()
        confinement = self._confinement(index)  # creates the scratch dir the stack file lives in
        proc = self._ctx.Process(target=_worker_main, args=(index, self.threads_per_worker, tasks, self._results, self.model_cache,
                                                       self.allowed_roots, os.getpid(), confinement,
                                                       self.data_memory_mb, self._stack_path(index)),
                                 name=f"hopper-worker-{index}", daemon=True)
        proc.start()
        self._procs[index], self._task_queues[index] = proc, tasks
        self._ready.discard(index)
        self._starting[index] = time.monotonic()

    def _where_stuck(self, index: int, proc: mp.Process) -> str:
        """Ask a hung worker for its Python stacks, log them whole, and return its main thread's innermost frames
        (for the config's error); empty when it does not answer within a second."""
        path = self._stack_path(index)
        try:
            size = os.path.getsize(path)
            os.kill(proc.pid, STACK_SIGNAL)
        except OSError:
            return ""
        deadline = time.monotonic() + 1.0
        text = ""
        while time.monotonic() < deadline:
            time.sleep(0.1)
            with open(path, errors="replace") as handle:
                handle.seek(size)
                text = handle.read()
            if text.rstrip().endswith(")") or "\n\n" in text:
                break
        if not text.strip():
            return ""
        log.warning("worker %d hung; its threads' stacks:\n%s", index, text.rstrip())
        return innermost_frames(text)

    def start(self) -> None:
        for index in range(self.n_workers):
            if index not in self._procs:
                self._spawn(index)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every worker has imported TensorFlow (useful before timing)."""
        deadline = time.monotonic() + timeout
        while len(self._ready - self._draining) < self.n_workers and time.monotonic() < deadline:
            self._drain(0.2)

    def worker_ids(self) -> list[int]:
        return sorted(set(self._procs) - self._draining)

    def draining(self) -> list[int]:
        return sorted(self._draining)

    def resize(self, n_workers: int, *, now: bool = False) -> None:
        """Start workers with fresh ids, or drain the idle ones first, then the highest ids (see ``Backend``)."""
        if n_workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        active = self.worker_ids()
        for _ in range(n_workers - len(active)):
            index = 0
            while index in self._procs or index in self._exiting:
                index += 1
            self._spawn(index)
        surplus = len(active) - n_workers
        if surplus > 0:
            # Idle (or still starting) workers go first: removing them loses no work.
            victims = sorted(active, key=lambda w: (w in self._running, -w))[:surplus]
            for index in victims:
                self._draining.add(index)
                if index not in self._running:
                    self._retire(index)
                elif now:
                    self._removed_now.append(self._kill_running(index))
        self.n_workers = len(self.worker_ids())

    def _kill_running(self, index: int) -> Lost:
        """Stop a draining worker in the middle of its sub-epoch; the sub-epoch is lost and re-run elsewhere."""
        task, _ = self._running.pop(index)
        proc = self._procs[index]
        kill_group(proc.pid)
        proc.kill()
        self._retire(index)
        return Lost(task, index, REMOVED_DETAIL)

    def _retire(self, index: int) -> None:
        """Tell a drained worker to exit and forget it (its process is reaped in ``poll``)."""
        proc, tasks = self._procs.pop(index), self._task_queues.pop(index)
        try:
            tasks.put_nowait(None)
        except Exception:  # noqa: BLE001, S110 - a killed worker's queue may be broken
            pass
        self._exiting[index] = (proc, time.monotonic() + 30.0)
        self._ready.discard(index)
        self._starting.pop(index, None)
        self._pids.pop(index, None)
        self._draining.discard(index)

    def _reap(self) -> None:
        now = time.monotonic()
        for index, (proc, deadline) in list(self._exiting.items()):
            if proc.is_alive() and now < deadline:
                continue
            if proc.is_alive():
                kill_group(proc.pid)
                proc.kill()
            proc.join(1)
            del self._exiting[index]

    def shutdown(self) -> None:
        for tasks in self._task_queues.values():
            try:
                tasks.put_nowait(None)
            except Exception:  # noqa: BLE001, S110 - the queue may already be broken
                pass
        deadline = time.monotonic() + 5
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                kill_group(proc.pid)
                proc.kill()
                proc.join(2)
        for proc, _ in self._exiting.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                kill_group(proc.pid)
                proc.kill()
        self._procs.clear()
        self._task_queues.clear()
        self._running.clear()
        self._ready.clear()
        self._draining.clear()
        self._exiting.clear()
        self._starting.clear()
        if not self.allowed_roots:  # unconfined workers' stack files are in the shared temp dir
            for path in glob.glob(self._stack_path("*")):
                with contextlib.suppress(OSError):
                    os.remove(path)

    def idle_workers(self) -> list[int]:
        return [i for i in sorted(self._ready) if i not in self._running and i not in self._draining]

    def submit(self, worker: int, task: SubEpochTask) -> None:
        if worker in self._running or worker not in self._ready:
            raise RuntimeError(f"worker {worker} is not idle")
        if self._owner is not None and "://" not in task.out_path:
            # The sandbox user writes the checkpoint: its directory must be that user's.
            hand_over(os.path.dirname(task.out_path), self._owner)
        self._running[worker] = (task, time.monotonic())
        self._task_queues[worker].put(task)

    def worker_pids(self) -> dict[int, int]:
        return dict(self._pids)

    def _over_memory(self, proc: mp.Process) -> int | None:
        """The worker's resident MB when over the limit, else None."""
        import psutil

        try:
            rss = psutil.Process(proc.pid).memory_info().rss // 2**20
        except psutil.Error:
            return None
        return rss if rss > self.memory_limit_mb else None

    def _drain(self, timeout: float) -> list[SubEpochResult]:
        out: list[SubEpochResult] = []
        for kind, index, payload in drain(self._results, timeout):
            if kind == "ready":
                proc = self._procs.get(index)
                if proc is None or proc.pid != payload[0]:
                    continue  # a worker that was removed before it finished starting
                self._ready.add(index)
                self._pids[index], sandbox = payload
                if sandbox != self.sandbox:
                    log.info("local workers: %s", sandbox)
                    self.sandbox = sandbox
                self._starting.pop(index, None)
            elif index in self._running and self._running[index][0].sub_epoch_id == payload.sub_epoch_id:
                del self._running[index]
                out.append(payload)
                if index in self._draining:
                    self._retire(index)  # its last sub-epoch is back: now it may go
        return out

    def poll(self, timeout: float) -> list[Completion]:
        completions: list[Completion] = [*self._removed_now, *self._drain(timeout)]
        self._removed_now.clear()
        self._reap()
        now = time.monotonic()
        for index, proc in list(self._procs.items()):
            running = self._running.get(index)
            hung = running is not None and now - running[1] > self.sub_epoch_timeout
            over = self._over_memory(proc) if running is not None and self.memory_limit_mb else None
            started = self._starting.get(index)
            stalled = started is not None and now - started > self.start_timeout
            if proc.is_alive() and not hung and over is None and not stalled:
                continue
            where = self._where_stuck(index, proc) if (hung or stalled) and proc.is_alive() else ""
            if hung or over is not None or stalled:
                kill_group(proc.pid)
                proc.kill()
                proc.join(5)
            else:
                # Collect a result the worker managed to send before it died.
                completions.extend(self._drain(0.05))
                running = self._running.get(index)
            if over is not None:
                reason = f"the worker used {over} MB, over the {self.memory_limit_mb} MB memory limit"
            elif hung:
                reason = f"sub-epoch exceeded the {self.sub_epoch_timeout:g} s limit"
            elif stalled:
                reason = f"it did not start within {self.start_timeout:g} s (importing TensorFlow, confining itself)"
            else:
                reason = f"worker process {proc.pid} exited with code {proc.exitcode}"
            if where:
                reason += f"; it was at {where}"
            log.warning("worker %d lost: %s; restarting it", index, reason)
            if running is not None:
                completions.append(Lost(running[0], index, reason, hung=hung, fatal=hung or over is not None))
                del self._running[index]
            if index in self._draining:
                self._retire(index)  # it was leaving anyway: do not start it again
                continue
            self._spawn(index)
        return completions
