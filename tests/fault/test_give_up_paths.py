"""The paths on which Hopper gives up, or re-runs, asserted as the README states them.

* The ledger (real store, no training): a config whose worker dies three times in a row fails, a success in
  between starts the count again; a retryable failure (a full disk) backs off 2, 4, 8 s and stays at 8.
* The Spark driver's side of the worker channel, over a real socket with the real HMAC handshake, against
  tasks played by this test (no cluster is needed for what is asserted): a task silent past the heartbeat
  timeout is lost and the job restarted; a sub-epoch over its time limit is lost as hung, which fails its
  config; a task of an earlier job is refused; a stale result is ignored; a task replaced by a new job's
  loses its sub-epoch; five job failures in a row without a ready worker make ``poll`` give up.
"""

from __future__ import annotations

import logging
import threading
import time
from multiprocessing.connection import Client

import pytest

from hopper.engine.status import ConfigStatus, SubEpochOutcome
from hopper.engine.store import Store
from hopper.mop_scheduler.backends import Lost
from hopper.mop_scheduler.backends.spark import SparkBackend
from hopper.mop_scheduler.ledger import MAX_CONSECUTIVE_LOSSES, Ledger
from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask
from tests.integration.test_store_contract import _dataset, _workload

N_PARTITIONS = 2


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", check_schema=False)
    store.upgrade()
    yield store
    store.dispose()


def _start(store: Store, config_id: int, partition: int = 0) -> SubEpochTask:
    """Record a running sub-epoch and build its task, as the scheduler does."""
    start = store.schedule.start_sub_epoch(config_id, partition, f"w{partition}", n_partitions=N_PARTITIONS,
                                           layouts={}, scripts={})
    return SubEpochTask(sub_epoch_id=start.sub_epoch_id, config_id=config_id, epoch=start.epoch,
                        partition=partition, model_ref=start.model_ref, entry_point=start.entry_point,
                        hparams=start.hparams, dataset=start.dataset, out_path=f"/nonexistent/{start.sub_epoch_id}",
                        seed=1, evaluate=False, in_checkpoint=start.in_checkpoint)


def _config(store: Store) -> int:
    workload = _workload(store, _dataset(store, partitions=N_PARTITIONS).id, proposals=[{"lr": 0.1}], max_epochs=3)
    return store.configs.page(workload.id)[0][0].id


def test_three_losses_in_a_row_fail_the_config_and_a_success_starts_the_count_again(store, tmp_path):
    assert MAX_CONSECUTIVE_LOSSES == 3
    config_id = _config(store)
    ledger = Ledger(store, N_PARTITIONS)

    def lose(n: int) -> None:
        for _ in range(n):
            ledger.commit(Lost(_start(store, config_id), 0, "worker process 4242 exited with code -9"))

    lose(2)
    assert store.configs.get(config_id).status == ConfigStatus.RUNNING  # two losses: re-run
    checkpoint = tmp_path / "c.npz"
    checkpoint.write_bytes(b"weights")
    task = _start(store, config_id)
    ledger.commit(SubEpochResult(sub_epoch_id=task.sub_epoch_id, config_id=config_id, worker=0, ok=True, rows=4,
                                 checkpoint_path=str(checkpoint), checkpoint_sha256="0" * 64, checkpoint_bytes=7))
    lose(2)
    config = store.configs.get(config_id)
    assert config.status == ConfigStatus.RUNNING and config.error is None  # the success reset the count
    lose(1)
    config = store.configs.get(config_id)
    assert config.status == ConfigStatus.FAILED
    assert config.error == ("its worker died 3 times in a row while training it (last: worker process 4242 exited "
                            "with code -9); out of memory?")
    outcomes = [s.outcome for s in store.schedule.list_sub_epochs(config_id=config_id)]
    assert outcomes == ["lost", "lost", "ok", "lost", "lost", "lost"]
    assert ledger.stats["lost"] == 5 and ledger.stats["committed"] == 1


def test_a_retryable_failure_backs_off_2_4_8_seconds_and_never_fails_the_config(store):
    config_id = _config(store)
    ledger = Ledger(store, N_PARTITIONS)
    waits = []
    for _ in range(5):
        task = _start(store, config_id)
        before = time.monotonic()
        ledger.commit(SubEpochResult(sub_epoch_id=task.sub_epoch_id, config_id=config_id, worker=0, ok=False,
                                     error="OSError: [Errno 28] No space left on device", retryable=True))
        waits.append(ledger.cooldown[config_id] - before)
        assert config_id in ledger.cooling()
    assert waits == pytest.approx([2.0, 4.0, 8.0, 8.0, 8.0], abs=0.5)
    assert store.configs.get(config_id).status == ConfigStatus.RUNNING
    # a failure of the config's own code is not retried: it fails the config with the reason at once
    task = _start(store, config_id)
    ledger.commit(SubEpochResult(sub_epoch_id=task.sub_epoch_id, config_id=config_id, worker=0, ok=False,
                                 error="ValueError: bad shape", retryable=False))
    config = store.configs.get(config_id)
    assert config.status == ConfigStatus.FAILED and config.error.startswith("ValueError: bad shape")


# -- the Spark driver's channel ----------------------------------------------------------------------------
class FakeTask:
    """One Spark worker task's side of the protocol (``_worker_task``), played over the real channel."""

    def __init__(self, backend: SparkBackend, partition: int, *, run_id: str | None = None,
                 heartbeat: float = 0.05) -> None:
        self.partition = partition
        self.conn = Client(backend._listener.address, authkey=backend._authkey)
        self.beating = threading.Event()
        self.lock = threading.Lock()
        self.send(("hello", partition, 10_000 + partition, "test-host", run_id or backend._run_id))
        self.beating.set()
        self.thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
        self.thread.start()

    def send(self, message: tuple) -> None:
        with self.lock:
            self.conn.send(message)

    def _beat(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            if self.beating.is_set():
                try:
                    self.send(("heartbeat", self.partition))
                except OSError:
                    return

    def close(self) -> None:
        self.beating.clear()
        self.conn.close()


def _poll_until(backend: SparkBackend, predicate, timeout: float = 60, what: str = "condition") -> list:
    """Poll the backend (as the scheduler does) until ``predicate(completions so far)``; returns them."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.extend(backend.poll(0.05))
        if predicate(seen):
            return seen
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {seen}")


def _task(sub_epoch_id: int, partition: int) -> SubEpochTask:
    return SubEpochTask(sub_epoch_id=sub_epoch_id, config_id=sub_epoch_id, epoch=0, partition=partition,
                        model_ref="mlp", entry_point="", hparams={}, dataset=None, out_path="/x", seed=0,
                        evaluate=False)


@pytest.fixture
def channel():
    """A Spark backend with its channel open and no cluster: tasks are played by the test."""
    backend = SparkBackend(N_PARTITIONS, heartbeat_interval=0.05, heartbeat_timeout=1.0, sub_epoch_timeout=2.0)
    backend._run_id = "run-1"
    backend.open_channel("127.0.0.1")
    tasks: list[FakeTask] = []

    def connect(partition: int, **kwargs) -> FakeTask:
        task = FakeTask(backend, partition, **kwargs)
        tasks.append(task)
        return task

    yield backend, connect
    for task in tasks:
        task.close()
    backend.shutdown()


def _ready(backend: SparkBackend, connect) -> list[FakeTask]:
    tasks = [connect(p) for p in range(N_PARTITIONS)]
    for task in tasks:
        task.send(("ready", task.partition))
    _poll_until(backend, lambda _: backend.idle_workers() == list(range(N_PARTITIONS)), what="both tasks ready")
    return tasks


def test_a_silent_task_is_lost_after_the_heartbeat_timeout_and_the_job_restarted(channel, caplog):
    backend, connect = channel
    silent, alive = _ready(backend, connect)
    backend.submit(0, _task(1, 0))
    backend.submit(1, _task(2, 1))
    silent.beating.clear()  # frozen executor: the socket stays open, nothing arrives
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hopper.mop_scheduler.spark"):
        out = _poll_until(backend, lambda seen: seen, what="the silent task to be lost")
    assert time.monotonic() - started >= backend.heartbeat_timeout * 0.95
    assert len(out) == 1 and isinstance(out[0], Lost)
    assert (out[0].task.sub_epoch_id, out[0].worker, out[0].hung, out[0].fatal) == (1, 0, False, False)
    assert out[0].reason == "no heartbeat from the Spark task for 1 s"
    assert "restarting the Spark worker tasks" in caplog.text
    assert 0 not in backend.worker_pids() and backend.in_flight() == {1: _task(2, 1)}  # the other one trains on
    alive.send(("result", 1, SubEpochResult(sub_epoch_id=2, config_id=2, worker=1, ok=True)))
    done = _poll_until(backend, lambda seen: seen, what="the live task's result")
    assert [r.sub_epoch_id for r in done] == [2] and backend.idle_workers() == [1]


def test_a_hung_sub_epoch_is_lost_as_hung_and_fails_its_config(channel, store):
    backend, connect = channel
    _ready(backend, connect)
    config_id = _config(store)
    task = _start(store, config_id)
    backend.submit(0, task)  # the task heartbeats but never answers
    started = time.monotonic()
    out = _poll_until(backend, lambda seen: seen, what="the sub-epoch to exceed its limit")
    assert time.monotonic() - started >= backend.sub_epoch_timeout * 0.95
    assert len(out) == 1 and out[0].hung and out[0].fatal
    assert out[0].reason == "sub-epoch exceeded the 2 s limit"
    Ledger(store, N_PARTITIONS).commit(out[0])
    config = store.configs.get(config_id)
    assert config.status == ConfigStatus.FAILED and config.error == "sub-epoch exceeded the 2 s limit"
    assert store.schedule.list_sub_epochs(config_id=config_id)[-1].outcome == SubEpochOutcome.TIMEOUT


def test_tasks_and_results_of_an_earlier_job_are_refused(channel):
    backend, connect = channel
    first, _ = _ready(backend, connect)
    # a task of an earlier job that Spark has not killed yet: the driver hangs up on it
    stale = FakeTask(backend, 0, run_id="run-0")
    with pytest.raises((EOFError, OSError)):
        stale.conn.recv()
    stale.close()
    backend.submit(0, _task(7, 0))
    # a result for a sub-epoch this worker is not running (a re-run's predecessor) is ignored
    first.send(("result", 0, SubEpochResult(sub_epoch_id=6, config_id=6, worker=0, ok=True)))
    first.send(("heartbeat", 0))
    out = backend.poll(0.5) + backend.poll(0.5)
    assert out == [] and backend.in_flight() == {0: _task(7, 0)}
    # a new job's task for the same partition replaces the old one, whose sub-epoch is lost and re-run
    backend._run_id = "run-2"
    connect(0)
    out = _poll_until(backend, lambda seen: seen, what="the replaced task's sub-epoch")
    assert [(x.task.sub_epoch_id, x.reason) for x in out] == [(7, "the Spark task was replaced")]
    assert backend.worker_pids()[0] == 10_000 and 0 not in backend.idle_workers()  # connected, not ready yet


def test_five_job_failures_without_a_ready_worker_give_up(channel):
    backend, connect = channel
    assert backend.job_retry_limit == 5
    # what the job thread reports each time Spark fails the barrier job (a broken cluster, say)
    for attempt in range(4):
        backend._events.put(("job_ended", f"executor lost ({attempt})"))
    backend.poll(0.2)
    # a worker that becomes ready means the cluster works: the count starts again
    task = connect(0)
    task.send(("ready", 0))
    _poll_until(backend, lambda _: backend.idle_workers() == [0], what="the task to be ready")
    backend._events.put(("job_ended", "executor lost (with a ready worker)"))  # not counted: it had one
    backend.poll(0.2)
    assert backend.idle_workers() == [] and backend.worker_pids() == {}  # its task went with the job
    for attempt in range(4):
        backend._events.put(("job_ended", f"executor lost ({attempt})"))
    backend.poll(0.2)
    backend.poll(0.2)  # four failures in a row: still retrying
    backend._events.put(("job_ended", "executor lost (last)"))
    backend.poll(0.2)
    with pytest.raises(RuntimeError, match=r"the Spark job failed 5 times in a row without a worker becoming "
                                           r"ready; last error: executor lost \(last\)"):
        backend.poll(0.2)
