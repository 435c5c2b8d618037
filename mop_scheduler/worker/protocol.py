"""The plain-data task protocol between the scheduler and its workers.

The scheduler builds ``SubEpochTask``s and reads ``SubEpochResult``s; workers (local processes or
Spark executors) run them. Plain frozen dataclasses so they pickle across processes, and no
TensorFlow import, so the scheduler process never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hopper.engine.entities import DatasetLayout


@dataclass(frozen=True)
class SubEpochTask:
    """Everything a worker needs to run one sub-epoch; plain data so it pickles across processes."""

    sub_epoch_id: int
    config_id: int
    epoch: int
    partition: int
    model_ref: str
    entry_point: str
    hparams: dict
    dataset: DatasetLayout  # where the partitions lie, as the store describes them
    out_path: str
    seed: int
    evaluate: bool
    in_checkpoint: tuple[str, str] | None = None  # (path, sha256)
    warm_start: tuple[str, str] | None = None
    # The workload's privacy options (PrivacySpec.model_dump()); set: train with DP-SGD. The config's
    # hparams already carry the resolved noise_multiplier when the workload asked for a target epsilon.
    privacy: dict | None = None
    # The workload's objectives that the worker computes itself (flops, val_balanced_accuracy, val_cost, ...),
    # resolved at launch (class indices, cost matrix); empty: Keras' own metrics only.
    objectives: tuple[dict, ...] = ()
    # A script's entry options from the workload spec: a HyperModel class's constructor arguments, and the
    # module globals bound to the training sample before the script runs.
    entry_args: dict | None = None
    bind_globals: dict | None = None
    # The workload's first objective (metric, direction): a float a HyperModel's fit returns is its value.
    objective: tuple[str, str] = ("val_accuracy", "max")
    # The shards to train on this sub-epoch, as one shuffled whole (``partition`` is the lowest); empty: the
    # partition alone. ``owned``: every shard this worker owns now, so it can drop the ones it handed over.
    shards: tuple[int, ...] = ()
    owned: tuple[int, ...] = ()


@dataclass
class SubEpochResult:
    sub_epoch_id: int
    config_id: int
    worker: int
    ok: bool
    rows: int = 0
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)
    compute_seconds: float = 0.0
    hop_seconds: float = 0.0
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None
    checkpoint_bytes: int = 0
    reused_in_memory: bool = False
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    details: str | None = None
    retryable: bool = False
    # The DP-SGD blocks (q, noise_multiplier, steps) this sub-epoch ran; the store accounts them on commit.
    dp_events: list[tuple[float, float, int]] = field(default_factory=list)
    # Hyperparameters the script declared that the workload's space lacks (a SearchSpace dict): first seen in
    # a later build (conditional layers) or in a HyperModel's fit. The scheduler grows the space with them.
    new_space: dict = field(default_factory=dict)
