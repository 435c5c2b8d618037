"""The sub-epoch runner: train one config on one partition for one sub-epoch (worker side).

Both backends run this code; only how tasks arrive differs. It imports TensorFlow lazily so that
the scheduler and web processes never do.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hopper.engine.catalog import default_for
from hopper.engine.entities import DatasetLayout
from hopper.mop_scheduler.worker.inputs import plain_keras_fit, shuffled_batches
from hopper.mop_scheduler.worker.objectives import extra_objectives
from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask

log = logging.getLogger("hopper.mop_scheduler.worker.runner")

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.ESTALE}
#: Hyperparameters a roster model's traced train and evaluation functions do not depend on: the learning rate is an
#: optimizer variable (assigned, never baked into the trace) and the batch size a dimension traced as unknown.
_TRACE_FREE_HPARAMS = frozenset({"lr", "batch_size"})


def nbytes(value: Any) -> int:
    """Bytes of the arrays a loaded partition holds (numpy arrays, typed columns, tuples of them)."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, tuple | list):
        return sum(nbytes(v) for v in value)
    arrays = getattr(value, "arrays", None)  # typed table columns
    return sum(nbytes(a) for a in arrays) if arrays is not None else 0


#: TensorFlow's inter-op pool never has fewer threads than this. With one, an op that holds the pool's only thread
#: while it waits for work that needs another (tf.data's iterator, prefetch and map functions) can deadlock, which
#: TensorFlow's own issues show in several forms (#10369, #38969, #39006: "pass if set 2"); a worker would then hang
#: until the sub-epoch timeout. The compute stays on ``threads`` intra-op threads: a second inter-op thread only
#: runs independent ops side by side, and mostly waits.
MIN_INTEROP_THREADS = 2


def configure_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools (call before TF runs any op)."""
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(threads, MIN_INTEROP_THREADS))


#: Rows an evaluation batch holds: as many as make about this many bytes of input, within the bounds below.
EVAL_BATCH_BYTES = 2**20
EVAL_BATCH_ROWS = (512, 4096)


def evaluation_batch_size(x: Any, rows: int) -> int:
    """Rows per batch for an epoch-end evaluation of ``x`` (``rows`` rows): about ``EVAL_BATCH_BYTES`` of input.

    Evaluation of a small model is mostly per-step overhead: on 40 000 tabular rows (20 features, the roster mlp,
    one thread) batches of 512 took 0.12-0.17 s against 0.06-0.08 s for 2 048-8 192, and each of a search's
    configs evaluates at every epoch end. Rows of 2 KiB or more (images from 28 x 28 up) and text keep 512, so
    activations stay as small as before; narrow numeric rows (tabular, 8 x 8 digits) get up to 4 096.
    """
    if _has_strings(x):  # a string's bytes are not in nbytes, and text models expand each row a lot
        return EVAL_BATCH_ROWS[0]
    row_bytes = max(1, nbytes(x) // max(1, rows))
    low, high = EVAL_BATCH_ROWS
    return int(min(high, max(low, EVAL_BATCH_BYTES // row_bytes)))


def _has_strings(value: Any) -> bool:
    if getattr(value, "dtype", None) is not None:
        return value.dtype == object
    if isinstance(value, dict):
        return any(_has_strings(v) for v in value.values())
    if isinstance(value, tuple | list):
        return any(_has_strings(v) for v in value)
    return any(_has_strings(a) for a in getattr(value, "arrays", ()))


def seed_sub_epoch(seed: int) -> None:
    """Seed Python's, NumPy's and Keras' random generators for a sub-epoch: ``keras.utils.set_random_seed`` without
    its ``tf.random.set_seed``.

    Why not that call: TensorFlow's ``set_seed`` clears the eager context's kernel cache ("to reset any existing
    seeds"), so every op of every compiled train, evaluation and checkpoint function is instantiated again on its
    next run. Called once per sub-epoch, that made a digits epoch of the roster cnn 2.5 times slower (fit
    60-70 ms against 160-290 ms, evaluation 26 against 60 ms, checkpoint write 3 against 22-29 ms; measured in one
    process, one thread). Keras' own random ops (dropout, noise, initialisers) are stateless ops seeded from its
    ``SeedGenerator``s, which these seeds determine; TensorFlow's global seed is set once per worker process, so a
    user's own stateful ``tf.random`` op continues its sequence across sub-epochs instead of restarting it.
    """
    import random

    import numpy as np

    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # a Keras that moved its internals: the slow, public way
        import keras

        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)  # recreated from the seed
    random.seed(seed)
    np.random.seed(seed)
    global _tf_seeded
    if not _tf_seeded:
        import tensorflow as tf

        tf.random.set_seed(seed)
        _tf_seeded = True


_tf_seeded = False  # TensorFlow's global seed is set once per process (see seed_sub_epoch)


class SubEpochRunner:
    """A worker's training engine: holds its partitions and recently trained models in memory.

    Args:
        worker: this worker's index (= the partition it owns).
        model_cache_size: how many models to keep built. A config whose next sub-epoch lands on
            this worker again continues from memory without reading its checkpoint, and any cached
            config skips rebuilding and re-tracing its model (which costs more than a small
            model's sub-epoch): size it to the number of configs that train at once.
        data_memory_bytes: what the datasets this worker holds (its partition and the validation split of
            each) may take; beyond it the least recently used dataset is dropped and read again on its next
            use (0 = no limit). The one in use is always kept, even alone over the budget.
    """

    def __init__(self, worker: int, model_cache_size: int = 32,
                 reader: Callable[[str, Sequence[int]], tuple[Any, Any]] | None = None,
                 data_memory_bytes: int = 0) -> None:
        self.worker = worker
        self._reader = reader
        # (dataset id, shard) -> its rows, loaded on first use; the last multi-shard union per dataset
        self._data: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._unions: dict[int, tuple[tuple[int, ...], tuple[Any, Any]]] = {}
        # dataset ids this worker holds rows of, least recently used first, and the bytes each takes
        self._recency: OrderedDict[int, None] = OrderedDict()
        self._data_bytes: dict[int, int] = {}
        self.data_memory_bytes = data_memory_bytes
        #: datasets dropped to stay within the data memory budget (their ids, oldest first)
        self.evicted: list[int] = []
        self._validation: dict[int, tuple[Any, Any]] = {}
        self._factories: dict[tuple, Any] = {}
        # config_id -> (model, path of the checkpoint that equals its in-memory state, its graph key or None)
        self._models: OrderedDict[int, tuple[Any, str, tuple | None]] = OrderedDict()
        self._cache_size = model_cache_size
        #: configs whose first sub-epoch here trained another config's compiled model instead of tracing a new one
        self.compiled_reuses = 0

    def _read(self, path: str, feature_shape: Sequence[int]) -> tuple[Any, Any]:
        if self._reader is None:
            from hopper.engine.data import read_partition

            self._reader = read_partition
        return self._reader(path, feature_shape)

    def _held(self, dataset_id: int, added: Any = None) -> None:
        """Mark a dataset used now, count what was just loaded for it, and keep the whole within the budget."""
        if added is not None:
            self._data_bytes[dataset_id] = self._data_bytes.get(dataset_id, 0) + nbytes(added)
        self._recency[dataset_id] = None
        self._recency.move_to_end(dataset_id)
        if added is not None:
            self._evict(keep=dataset_id)

    def _shard(self, ref: DatasetLayout, shard: int) -> tuple[Any, Any]:
        key = (ref.dataset_id, shard)
        if key not in self._data:
            self._data[key] = self._read(ref.partition_paths[shard], ref.feature_shape)
            self._held(ref.dataset_id, self._data[key])
        return self._data[key]

    def _partition(self, ref: DatasetLayout, task: SubEpochTask) -> tuple[Any, Any]:
        """The rows of the task's shards, loading shards this worker has not held before."""
        shards = tuple(task.shards) or (task.partition,)
        if task.owned:
            # Shards handed over to other workers since: free their memory.
            for key in [k for k in self._data if k[0] == ref.dataset_id and k[1] not in task.owned]:
                self._data_bytes[ref.dataset_id] = self._data_bytes.get(ref.dataset_id, 0) - nbytes(self._data.pop(key))
        self._held(ref.dataset_id)
        if len(shards) == 1:
            return self._shard(ref, shards[0])
        cached = self._unions.get(ref.dataset_id)
        if cached is not None and cached[0] == shards:
            return cached[1]
        union = _concatenate([self._shard(ref, s) for s in shards])
        previous = self._unions.pop(ref.dataset_id, None)
        if previous is not None:
            self._data_bytes[ref.dataset_id] = self._data_bytes.get(ref.dataset_id, 0) - nbytes(previous[1])
        self._unions[ref.dataset_id] = (shards, union)
        if task.owned and set(shards) >= set(task.owned):
            # The union holds every shard this worker owns (the replicated plan: all of them), and it is what the
            # next sub-epochs train on: keeping the shards too would hold the data twice.
            for key in [k for k in self._data if k[0] == ref.dataset_id]:
                self._data_bytes[ref.dataset_id] = self._data_bytes.get(ref.dataset_id, 0) - nbytes(self._data.pop(key))
        self._held(ref.dataset_id, union)
        return union

    def _validation_split(self, ref: DatasetLayout) -> tuple[Any, Any]:
        if ref.dataset_id not in self._validation:
            self._validation[ref.dataset_id] = self._read(ref.validation_path, ref.feature_shape)
            self._held(ref.dataset_id, self._validation[ref.dataset_id])
        return self._validation[ref.dataset_id]

    @property
    def data_bytes(self) -> int:
        """Bytes of the datasets held now (partitions and validation splits)."""
        return sum(self._data_bytes.values())

    def _evict(self, keep: int) -> None:
        """Drop least recently used datasets until the held ones fit the data memory budget."""
        if self.data_memory_bytes <= 0:
            return
        while self.data_bytes > self.data_memory_bytes:
            victim = next((d for d in self._recency if d != keep), None)
            if victim is None:
                return  # only the dataset in use is left: a launch check keeps it within the budget
            for key in [k for k in self._data if k[0] == victim]:
                del self._data[key]
            self._unions.pop(victim, None)
            self._validation.pop(victim, None)
            self._data_bytes.pop(victim, None)
            self._recency.pop(victim, None)
            self.evicted.append(victim)
            log.info("worker %d: dropped dataset %d from memory (data memory budget %d bytes)", self.worker, victim,
                     self.data_memory_bytes)

    def _build_sample(self, ref: DatasetLayout):  # noqa: ANN202
        """The training sample a script's builder receives: the head of partition 0, the same on every worker."""
        from hopper.engine.data import Columns
        from hopper.mop_scheduler.worker.build_data import sample_of

        x, y = (self._data[(ref.dataset_id, 0)] if (ref.dataset_id, 0) in self._data
                else self._read(ref.partition_paths[0], ref.feature_shape))
        if isinstance(x, Columns):
            import numpy as np

            from hopper.mop_scheduler.worker.build_data import SAMPLE_ROWS, BuildData, with_labels

            # A typed table: its columns as the DataFrame a script would have read, and the numeric matrix as x
            # when there is one (a table with string columns keeps its Columns, indexable by name).
            head = x.take(np.arange(min(len(x), SAMPLE_ROWS)))
            frame = with_labels(head.to_frame(), y[:SAMPLE_ROWS], ref.label_names)
            return BuildData(head.matrix if not head.string_columns else head, y[:SAMPLE_ROWS], frame)
        return sample_of(x, y)

    def _factory(self, task: SubEpochTask):  # noqa: ANN202
        key = (task.model_ref, task.entry_point, task.dataset.feature_shape, task.dataset.n_outputs, task.dataset.task,
               repr(sorted((task.entry_args or {}).items())), repr(sorted((task.bind_globals or {}).items())),
               task.dataset.label_kind)
        if key not in self._factories:
            from functools import partial

            from hopper.mop_scheduler.worker.factory import ModelFactory

            self._factories[key] = ModelFactory(task.model_ref, task.dataset.feature_shape, task.dataset.n_outputs,
                                                task.dataset.task, entry_point=task.entry_point,
                                                entry_args=task.entry_args, bind_globals=task.bind_globals,
                                                data_source=partial(self._build_sample, task.dataset),
                                                label_kind=task.dataset.label_kind)
        return self._factories[key]

    @staticmethod
    def _features_for(model: Any, x: Any) -> Any:
        """A partition as this model takes it: the array, or named columns for Inputs named after them."""
        from hopper.mop_scheduler.worker.inputs import features_for

        return features_for(model, x)

    def _graph_key(self, task: SubEpochTask, factory: Any) -> tuple | None:
        """What a config's compiled model depends on, for configs whose models may share one (roster models, not
        private: DP-SGD changes the model's class and step); None when its model is its own."""
        if not factory.is_roster or task.privacy is not None:
            return None
        return (id(factory), tuple(sorted((k, repr(v)) for k, v in task.hparams.items()
                                          if k not in _TRACE_FREE_HPARAMS)))

    def _take_compiled(self, key: tuple | None) -> Any:
        """The least recently used cached model with this graph key, taken from its config (whose next sub-epoch
        here then restores its checkpoint into some model, as after a hop); None when there is none."""
        if key is None:
            return None
        owner = next((config_id for config_id, entry in self._models.items() if entry[2] == key), None)
        return None if owner is None else self._models.pop(owner)[0]

    def _model_for(self, task: SubEpochTask, result: SubEpochResult):  # noqa: ANN202
        from hopper.mop_scheduler.worker.checkpoints import copy_state, load_checkpoint, transfer_weights

        cached = self._models.pop(task.config_id, None)
        if cached is not None and task.in_checkpoint is not None and cached[1] == task.in_checkpoint[0]:
            result.reused_in_memory = True
            return cached[0]
        factory = self._factory(task)
        # A config new to this worker trains a compiled model of the same graph if one is cached: tracing its
        # train and evaluation functions cost more than a sub-epoch (0.7-0.9 s against 0.5 s on the 16 000-row
        # search benchmark), and ASHA or Hyperband try many configs for an epoch or two.
        compiled = None if cached is not None else self._take_compiled(self._graph_key(task, factory))
        if cached is not None:
            model = cached[0]
        elif compiled is not None:
            model = compiled
            self.compiled_reuses += 1
            if task.in_checkpoint is None:
                # This config's own initial weights and optimizer state (learning rate included), as a fresh
                # build would have them; a checkpoint below overwrites them all.
                copy_state(factory.build(task.hparams), model)
        elif factory.uses_hp:
            hp = factory.hyperparameters(task.hparams)
            model = factory.build(task.hparams, hp)
            result.new_space.update(factory.new_hparams(hp, task.hparams))
        else:
            model = factory.build(task.hparams)
        result.notes.extend(n for n in factory.notes if n not in result.notes)
        if task.in_checkpoint is not None and not load_checkpoint(model, *task.in_checkpoint):
            if not factory.fits_itself:  # a fit that makes its own optimizer takes the state (fit_optimizers)
                result.notes.append("the optimizer state in the checkpoint did not fit; it restarted fresh")
        elif task.warm_start is not None:
            copied, total = transfer_weights(model, *task.warm_start)
            result.notes.append(f"warm start: {copied}/{total} weight tensors copied from {Path(task.warm_start[0]).name}")
        return model

    def run(self, task: SubEpochTask) -> SubEpochResult:
        """Train ``task``; never raises: failures come back as a result with the error text."""
        result = SubEpochResult(task.sub_epoch_id, task.config_id, self.worker, ok=False)
        try:
            self._run(task, result)
            result.ok = True
        except MemoryError:
            result.error = "out of memory while training this sub-epoch"
            result.details = traceback.format_exc()
        except OSError as exc:
            # A full disk or a flaky mount is not the config's fault: retry later. Other OS errors
            # (a missing or unreadable file the config names) are.
            result.error = f"I/O error: {exc}"
            result.details = traceback.format_exc()
            result.retryable = exc.errno in _TRANSIENT_ERRNOS
            self._models.pop(task.config_id, None)
        except Exception as exc:  # noqa: BLE001 - a user's model can raise anything
            from hopper.engine.errors import HopperError

            result.error = exc.message if isinstance(exc, HopperError) else f"{type(exc).__name__}: {exc}"
            result.details = traceback.format_exc()
            result.retryable = bool(getattr(exc, "retryable", False))
            self._models.pop(task.config_id, None)
        return result

    def _run(self, task: SubEpochTask, result: SubEpochResult) -> None:
        from hopper.mop_scheduler.worker.checkpoints import save_checkpoint

        x, y = self._partition(task.dataset, task)
        t0 = time.perf_counter()
        # Seeded before a build too: a config's initial weights then follow from its sub-epoch's seed, not from
        # whatever this worker process ran before.
        seed_sub_epoch(task.seed % (2**31))
        # The optimizer's hparams (lr, ...) were set by the factory when it built the model; a restored
        # checkpoint of this config carries the same values and a warm start copies weights only.
        model = self._model_for(task, result)
        events_before = 0
        if task.privacy is not None:
            from hopper.mop_scheduler.worker.dp_sgd import make_private

            # Safe on a cached model: it only updates the DP parameters and keeps its event log.
            make_private(model, task.hparams, task.privacy, int(len(x)))
            events_before = len(model.dp_events)
        t1 = time.perf_counter()
        seed_sub_epoch(task.seed % (2**31))  # training draws the same numbers whether or not this sub-epoch built
        factory = self._factory(task)
        reported: dict[str, float] | None = None
        if factory.fits_itself:
            history, reported = self._fit_like_keras_tuner(factory, model, task, self._features_for(model, x), y,
                                                           result)
        else:
            batch_size = int(task.hparams.get("batch_size", default_for("batch_size")))
            features = self._features_for(model, x)
            if plain_keras_fit(model):
                # shuffle=False: the batches are shuffled already (Keras' default would only warn about it)
                batches = shuffled_batches(features, y, batch_size, seed=task.seed % (2**31))
                history = factory.fit(model, task.hparams, batches, None, epochs=1, shuffle=False, verbose=0)
            else:
                history = factory.fit(model, task.hparams, features, y, batch_size=batch_size, epochs=1, shuffle=True,
                                      verbose=0)
        t2 = time.perf_counter()
        if task.privacy is not None:
            from hopper.engine.privacy import merge_events

            merged = merge_events(model.dp_events[events_before:])  # raises on a mixed sub-epoch: it fails
            result.dp_events = [] if merged is None else [merged]
            if merged is None:
                from hopper.engine.errors import ValidationError

                # Training that bypassed model.fit took no private step: refuse it rather than report
                # an epsilon for weights that were trained without noise.
                raise ValidationError("this workload trains with DP-SGD but the sub-epoch took no private step: "
                                      "the script's fit must call model.fit(x, y, batch_size=...) on the model "
                                      "Hopper built", field="privacy")
        hist = getattr(history, "history", None) or {}
        result.rows = int(len(x))
        if "loss" in hist:
            result.train_loss = float(hist["loss"][-1])
        for key in ("accuracy", "acc", "mae"):
            if key in hist:
                result.train_accuracy = float(hist[key][-1])
                break
        if task.evaluate:
            if reported is not None:
                result.val_metrics = reported
            else:
                xv, yv = self._validation_split(task.dataset)
                values = model.evaluate(shuffled_batches(self._features_for(model, xv), yv,
                                                         evaluation_batch_size(xv, len(yv)), seed=None),
                                        verbose=0, return_dict=True)
                result.val_metrics = {f"val_{k}": float(v) for k, v in values.items()}
            # The model's size as an objective (params: min) beside accuracy and edge latency.
            result.val_metrics["params"] = float(model.count_params())
            if task.objectives:
                xv, yv = self._validation_split(task.dataset)
                result.val_metrics.update(extra_objectives(model, self._features_for(model, xv), yv, task.objectives,
                                                           task.dataset.n_outputs))
        t3 = time.perf_counter()
        sha, size = save_checkpoint(model, task.out_path)
        t4 = time.perf_counter()
        result.checkpoint_path, result.checkpoint_sha256, result.checkpoint_bytes = task.out_path, sha, size
        result.compute_seconds = (t2 - t1) + (t3 - t2)
        result.hop_seconds = (t1 - t0) + (t4 - t3)
        self._models[task.config_id] = (model, task.out_path, self._graph_key(task, factory))
        while len(self._models) > self._cache_size:
            self._models.popitem(last=False)


    def _fit_like_keras_tuner(self, factory, model, task: SubEpochTask, x, y,  # noqa: ANN001
                              result: SubEpochResult) -> tuple[Any, dict[str, float] | None]:
        """One sub-epoch through the HyperModel's own ``fit``, called as KerasTuner calls it.

        The sub-epoch that ends an epoch passes the validation split; what ``fit`` returns is then the epoch's
        validation result, converted as KerasTuner converts it for its oracle (never ``model.evaluate`` on data
        the script's ``fit`` did not preprocess). Returns fit's result as a History-like object for the training
        numbers, and the reported validation metrics (None when this sub-epoch does not end an epoch).
        """
        import keras

        from hopper.mop_scheduler.worker.factory import metrics_from_fit

        hp = factory.hyperparameters(task.hparams)
        validation = None
        # A fit that names validation_data may use it on every call (unpack it, evaluate on its own crop), as
        # KerasTuner always passes it; one that only forwards **kwargs to model.fit gets it when the epoch ends,
        # so mid-epoch sub-epochs do not pay for an evaluation nobody reads.
        if task.evaluate or factory.fit_names_validation_data:
            xv, yv = self._validation_split(task.dataset)
            validation = (self._features_for(model, xv), yv)
        outcome = factory.fit_like_keras_tuner(model, hp, x, y, validation_data=validation)
        result.new_space.update(factory.new_hparams(hp, task.hparams))
        result.notes.extend(n for n in factory.notes if n not in result.notes)
        history = outcome if isinstance(outcome, keras.callbacks.History) else None
        if not task.evaluate:
            return history, None
        metric, direction = task.objective
        reported = metrics_from_fit(outcome, metric, direction)
        if history is None and isinstance(outcome, dict):
            history = keras.callbacks.History()
            history.history = {k: [v] for k, v in reported.items() if not k.startswith("val_")}
        if metric not in reported:
            result.notes.append(f"{factory.hypermodel_name}.fit reported no {metric} (it has "
                                f"{', '.join(sorted(reported)) or 'nothing'}): does it pass validation_data to "
                                f"model.fit or return the objective?")
        validation_metrics = {k: v for k, v in reported.items() if k.startswith("val_") or k == metric}
        return history, validation_metrics


def _concatenate(parts: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Several shards' rows as one (arrays or typed ``Columns``)."""
    import numpy as np

    from hopper.engine.data import Columns

    xs, ys = [p[0] for p in parts], [p[1] for p in parts]
    if isinstance(xs[0], Columns):
        x = Columns(xs[0].names, xs[0].types, tuple(np.concatenate([c.arrays[i] for c in xs])
                                                     for i in range(len(xs[0].arrays))))
    else:
        x = np.concatenate(xs)
    return x, np.concatenate(ys)


def worker_environment(threads: int) -> dict[str, str]:
    """Environment for a worker process: quiet TensorFlow, CPU only, pinned threads."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    if threads > 0:
        env.update({"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
                    "TF_NUM_INTEROP_THREADS": str(max(threads, MIN_INTEROP_THREADS))})
    return env
