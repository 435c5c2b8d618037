"""Settings from ``hopper.toml`` and ``HOPPER_*`` environment variables.

Precedence, lowest first: built-in defaults, ``$HOPPER_HOME/hopper.toml``, ``./hopper.toml``,
environment variables. ``HOPPER_HOME`` defaults to ``~/.hopper``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

_ENV_PREFIX = "HOPPER_"


@dataclass(frozen=True)
class Settings:
    """Where Hopper keeps its state and how it runs.

    Attributes:
        home: root of Hopper's own files (store, artefacts, token).
        database_url: SQLAlchemy URL of the config store.
        data_roots: directories that dataset paths must lie under.
        artifact_dir: partitions, checkpoints, TensorBoard logs, uploaded scripts.
        checkpoint_dir: where sub-epoch checkpoints go: a directory, or an fsspec URL (``s3://bucket/ckpt``,
            ``hdfs://...``) that the scheduler and every worker can reach; ``artifact_dir/checkpoints`` by default.
        backend: where sub-epochs run: ``local`` (worker processes here) or ``spark``.
        spark_master: Spark master URL for the ``spark`` backend (``spark://host:7077``, ``local[W]``).
        spark_driver_host: address Spark tasks dial back to (the driver's ``spark.driver.host``).
        workers: number of MOP workers the scheduler starts with (``hopper workers add/remove`` changes it
            while it runs).
        max_workers: the most workers the pool may grow to (0: ``workers``). Datasets are cut into
            ``dataset_shards`` = max(workers, max_workers) x ``shards_per_worker`` shards at registration, so
            that any worker count up to it gets a balanced share of every dataset.
        shards_per_worker: shards per worker at the largest pool (more: finer rebalancing when workers come and
            go, at the price of more, smaller files).
        spark_lost_executor_grace_seconds: how long the Spark backend waits for a lost executor's task to come
            back before it shrinks the pool by one instead of waiting forever.
        poll_interval: seconds between store polls when nothing completes.
        sub_epoch_timeout: seconds before a running sub-epoch is declared hung.
        script_timeout: seconds allowed to validate an uploaded script.
        script_memory_mb: address-space limit of a script validation process (0 = none).
        script_cpu_seconds: CPU-time limit of a script validation process.
        script_processes: process (task) limit of a validation child, counted over every process and thread of
            its real user (the sandbox user when it applies; root is exempt); 0 = none.
        script_file_mb: largest file user code may write (validation and training workers).
        script_validators: validations that run at once (the pool outside the web server's threads).
        script_queue: validations that may wait; beyond it an upload gets 429 with Retry-After.
        sandbox_user: the unprivileged user that runs user code (validation children, local training workers)
            when Hopper runs as root ("" = never switch); see ``hopper.mop_scheduler.worker.confine``.
        scheduler_lease_seconds: a scheduler holds the store's lease this long without a heartbeat (it renews
            every third of it); a killed scheduler is replaced after at most this long.
        max_queued_exports: export requests one actor may have queued or running at once.
        max_queued_profiles: profiling jobs one actor may have queued at once.
        max_running_deployments: deployments one actor may have requested, starting or running at once.
        worker_model_cache: models each worker keeps built between sub-epochs.
        worker_memory_mb: resident-memory limit of a training worker (0 = none).
        edge_lease_seconds: how long an edge agent holds a profiling job without a heartbeat.
        edge_max_attempts: claims of a profiling job before it is failed for good.
        edge_offline_seconds: a device not heard from for this long shows as offline.
        worker_data_memory_mb: memory a worker may spend holding datasets' partitions; beyond it the least
            recently used dataset is dropped (read again on its next use). A dataset whose largest partition alone
            exceeds it is refused at launch.
        price_per_worker_hour: what one worker-hour costs (any currency), for workloads' money budgets; 0 = no
            price, and a workload with a money budget is refused at launch.
        default_plan: the execution plan of a workload whose spec names none: auto (the scheduler chooses MOP or
            data-replicated per workload), mop or replicated (README, Execution plans).
        fair_share_by_owner: divide worker time between the people who launched workloads first, then between
            each person's workloads by weight; False: between workloads by weight only.
        public_url: the HTTPS address people reach ``hopper serve`` at through a TLS-terminating reverse proxy
            (``https://hopper.example.org``); an https URL marks the session cookie ``Secure`` and adds HSTS.
    """

    home: Path
    database_url: str
    data_roots: tuple[Path, ...]
    artifact_dir: Path
    checkpoint_dir: str | None = None
    backend: str = "local"
    spark_master: str = "local[2]"
    spark_driver_host: str | None = None
    workers: int = 2
    max_workers: int = 0
    shards_per_worker: int = 1
    spark_lost_executor_grace_seconds: float = 120.0
    poll_interval: float = 0.2
    sub_epoch_timeout: float = 1800.0
    script_timeout: float = 60.0
    script_memory_mb: int = 4096
    script_cpu_seconds: int = 120
    script_processes: int = 256
    script_file_mb: int = 1024
    script_validators: int = 2
    script_queue: int = 8
    sandbox_user: str = "hopper-sandbox"
    scheduler_lease_seconds: float = 15.0
    max_queued_exports: int = 5
    max_queued_profiles: int = 20
    max_running_deployments: int = 3
    worker_model_cache: int = 32
    worker_memory_mb: int = 8192
    edge_lease_seconds: float = 60.0
    edge_max_attempts: int = 3
    edge_offline_seconds: float = 90.0
    public_url: str | None = None
    worker_data_memory_mb: int = 2048
    price_per_worker_hour: float = 0.0
    fair_share_by_owner: bool = True
    default_plan: str = "auto"

    @property
    def worker_limit(self) -> int:
        """The most workers the pool may have."""
        return max(self.workers, self.max_workers)

    @property
    def dataset_shards(self) -> int:
        """How many shards a dataset registered now is cut into (a multiple of the largest pool)."""
        return self.worker_limit * max(1, self.shards_per_worker)

    @property
    def checkpoint_location(self) -> str:
        return self.checkpoint_dir or str(self.artifact_dir / "checkpoints")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return data.get("hopper", data)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, TOML files and the environment."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get(f"{_ENV_PREFIX}HOME", "~/.hopper")).expanduser().resolve()
    values: dict = {}
    values.update(_read_toml(home / "hopper.toml"))
    values.update(_read_toml(Path.cwd() / "hopper.toml"))
    for key in (
        "database_url", "data_roots", "artifact_dir", "checkpoint_dir", "backend", "spark_master", "spark_driver_host",
        "workers", "max_workers", "shards_per_worker", "spark_lost_executor_grace_seconds", "poll_interval",
        "sub_epoch_timeout", "script_timeout", "script_memory_mb", "worker_model_cache",
        "script_cpu_seconds", "script_processes", "script_file_mb", "script_validators", "script_queue",
        "sandbox_user", "scheduler_lease_seconds", "max_queued_exports", "max_queued_profiles",
        "max_running_deployments",
        "worker_memory_mb", "edge_lease_seconds", "edge_max_attempts", "edge_offline_seconds", "public_url",
        "worker_data_memory_mb", "price_per_worker_hour", "fair_share_by_owner", "default_plan",
    ):
        env_key = _ENV_PREFIX + key.upper()
        if env_key in env:
            values[key] = env[env_key]

    data_roots = values.get("data_roots", [str(home / "data")])
    if isinstance(data_roots, str):
        data_roots = [p for p in data_roots.split(os.pathsep) if p]
    return Settings(
        home=home,
        database_url=str(values.get("database_url", f"sqlite:///{home / 'hopper.db'}")),
        data_roots=tuple(Path(p).expanduser().resolve() for p in data_roots),
        artifact_dir=Path(values.get("artifact_dir", home / "artifacts")).expanduser().resolve(),
        checkpoint_dir=values.get("checkpoint_dir") or None,
        backend=str(values.get("backend", "local")),
        spark_master=str(values.get("spark_master", "local[2]")),
        spark_driver_host=values.get("spark_driver_host") or None,
        workers=int(values.get("workers", 2)),
        max_workers=int(values.get("max_workers", 0)),
        shards_per_worker=max(1, int(values.get("shards_per_worker", 1))),
        spark_lost_executor_grace_seconds=float(values.get("spark_lost_executor_grace_seconds", 120.0)),
        poll_interval=float(values.get("poll_interval", 0.2)),
        sub_epoch_timeout=float(values.get("sub_epoch_timeout", 1800.0)),
        script_timeout=float(values.get("script_timeout", 60.0)),
        script_memory_mb=int(values.get("script_memory_mb", 4096)),
        script_cpu_seconds=int(values.get("script_cpu_seconds", 120)),
        script_processes=int(values.get("script_processes", 256)),
        script_file_mb=int(values.get("script_file_mb", 1024)),
        script_validators=max(1, int(values.get("script_validators", 2))),
        script_queue=max(0, int(values.get("script_queue", 8))),
        sandbox_user=str(values.get("sandbox_user", "hopper-sandbox")),
        scheduler_lease_seconds=float(values.get("scheduler_lease_seconds", 15.0)),
        max_queued_exports=int(values.get("max_queued_exports", 5)),
        max_queued_profiles=int(values.get("max_queued_profiles", 20)),
        max_running_deployments=int(values.get("max_running_deployments", 3)),
        worker_model_cache=int(values.get("worker_model_cache", 32)),
        worker_memory_mb=int(values.get("worker_memory_mb", 8192)),
        edge_lease_seconds=float(values.get("edge_lease_seconds", 60.0)),
        edge_max_attempts=int(values.get("edge_max_attempts", 3)),
        edge_offline_seconds=float(values.get("edge_offline_seconds", 90.0)),
        public_url=str(values["public_url"]).rstrip("/") if values.get("public_url") else None,
        worker_data_memory_mb=int(values.get("worker_data_memory_mb", 2048)),
        price_per_worker_hour=float(values.get("price_per_worker_hour", 0.0)),
        fair_share_by_owner=str(values.get("fair_share_by_owner", True)).lower() not in ("0", "false", "no", "off"),
        default_plan=str(values.get("default_plan", "auto")),
    )
