"""Every Alembic revision, one step at a time, on a store that holds data: nothing a user stored may be lost.

For each revision R with parent P: the store is migrated to P, filled with rows shaped for P's schema
(plain Core inserts on the tables as reflected from the database: the ORM models describe the head and
would not match an older schema), upgraded to R, and every row is compared column by column. Rows for
what R adds are then inserted too, the store is downgraded to P, and P's rows must be intact again.
The test also fails when a table at some revision has a column the fixtures below do not fill, or when
a new revision appears without fixtures, so a new migration cannot slip through untested.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from hopper.engine.store import Store
from hopper.engine.store._store import _migrations_dir

T0 = datetime(2026, 11, 25, 10, 0, 0, 123456)
T1 = datetime(2026, 11, 25, 10, 5, 30, 654321)
T2 = datetime(2026, 11, 25, 11, 0, 0)


def _revisions() -> list[str]:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    return [s.revision for s in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))]


REVISIONS = _revisions()


def _at_least(revision: str, wanted: str) -> bool:
    return REVISIONS.index(revision) >= REVISIONS.index(wanted)


# -- the data a store holds at each revision ---------------------------------------------------------------
# Insert order matters (foreign keys are enforced on both databases); cyclic references
# (config -> its own checkpoint) are set by an UPDATE after the checkpoint exists, see DEFERRED.

def rows_at(revision: str) -> dict[str, list[dict]]:
    """Every table's full rows at REVISION; later revisions extend earlier ones (same ids, new columns)."""
    data: dict[str, list[dict]] = {
        "dataset": [
            {"id": 1, "name": "digits", "source_path": "/data/digits.npz", "format": "npz",
             "feature_columns": ["x"], "label_column": "y", "task": "classification", "n_rows": 1797,
             "n_train": 1437, "n_validation": 360, "feature_shape": [64], "classes": [0, 1, 2, 3],
             "partition_count": 2, "partition_paths": ["/a/p0.parquet", "/a/p1.parquet"],
             "validation_path": "/a/val.parquet", "schema": {"x": {"dtype": "float32", "shape": [64]}},
             "created_at": T0},
            {"id": 2, "name": "Größen ✓ regression", "source_path": "/data/r.csv", "format": "csv",
             "feature_columns": ["a", "b"], "label_column": "target", "task": "regression", "n_rows": 10,
             "n_train": 8, "n_validation": 2, "feature_shape": [2], "classes": None, "partition_count": 1,
             "partition_paths": ["/b/p0.parquet"], "validation_path": "/b/val.parquet", "schema": {},
             "created_at": T1},
        ],
        "script": [
            {"id": 1, "name": "cnn.py", "sha256": "ab" * 32, "path": "/scripts/ab.py", "entry_point": "build_model",
             "kind": "function", "valid": True, "validation": {"message": "ok", "notes": ["n1"]}, "created_at": T0},
            {"id": 2, "name": "bad.py", "sha256": "cd" * 32, "path": "/scripts/cd.py", "entry_point": "Model",
             "kind": None, "valid": False, "validation": {"message": "ImportError"}, "created_at": T1},
        ],
        "workload": [
            {"id": 1, "name": "grid on digits", "description": "first", "owner": "alice", "status": "running",
             "procedure": "grid", "search_space": {"lr": [0.001, 0.01], "units": 32},
             "objectives": [{"metric": "val_accuracy", "direction": "max"}], "max_epochs": 3,
             "max_configs": None, "max_wall_seconds": 3600.5, "seed": 7, "dataset_id": 1, "model_ref": "mlp",
             "script_id": None, "parent_workload_id": None, "parent_config_id": None,
             "warm_start_checkpoint_id": None, "error": None, "created_at": T0, "updated_at": T1},
            {"id": 2, "name": "regression, minimise", "description": "", "owner": "bob", "status": "paused",
             "procedure": "random", "search_space": {"lr": {"low": 0.0001, "high": 0.1, "log": True}},
             "objectives": [{"metric": "val_loss", "direction": "min"}], "max_epochs": 2,
             "max_configs": 4, "max_wall_seconds": None, "seed": 0, "dataset_id": 2, "model_ref": "script:1",
             "script_id": 1, "parent_workload_id": None, "parent_config_id": None,
             "warm_start_checkpoint_id": None, "error": "worker lost", "created_at": T1, "updated_at": T2},
        ],
        "config": [
            # 1: two epochs of metrics; 2: metrics without the objective; 3: no metrics at all;
            # 4: workload 2 minimises val_loss.
            {"id": 1, "workload_id": 1, "hparams": {"lr": 0.001, "units": 32}, "status": "done", "priority": 2,
             "epochs_done": 2, "origin": "search", "cloned_from_config_id": None, "warm_start_checkpoint_id": None,
             "current_checkpoint_id": None, "error": None, "notes": "best so far", "created_at": T0,
             "updated_at": T1, "version": 5},
            {"id": 2, "workload_id": 1, "hparams": {"lr": 0.01, "units": 32}, "status": "failed", "priority": 0,
             "epochs_done": 1, "origin": "clone", "cloned_from_config_id": 1, "warm_start_checkpoint_id": None,
             "current_checkpoint_id": None, "error": "NaN loss", "notes": None, "created_at": T1,
             "updated_at": T1, "version": 2},
            {"id": 3, "workload_id": 1, "hparams": {}, "status": "queued", "priority": -1, "epochs_done": 0,
             "origin": "user", "cloned_from_config_id": None, "warm_start_checkpoint_id": None,
             "current_checkpoint_id": None, "error": None, "notes": None, "created_at": T2, "updated_at": T2,
             "version": 0},
            {"id": 4, "workload_id": 2, "hparams": {"lr": 0.05}, "status": "running", "priority": 1,
             "epochs_done": 2, "origin": "search", "cloned_from_config_id": None, "warm_start_checkpoint_id": None,
             "current_checkpoint_id": None, "error": None, "notes": None, "created_at": T1, "updated_at": T2,
             "version": 3},
        ],
        "checkpoint": [
            {"id": 1, "config_id": 1, "epoch": 0, "seq": 1, "path": "/ck/1-0.keras", "sha256": "01" * 32,
             "bytes": 123456, "epoch_end": True, "created_at": T0},
            {"id": 2, "config_id": 1, "epoch": 1, "seq": 2, "path": "/ck/1-1.keras", "sha256": "02" * 32,
             "bytes": 2 ** 40, "epoch_end": False, "created_at": T1},
            {"id": 3, "config_id": 4, "epoch": 1, "seq": 1, "path": "/ck/4-1.keras", "sha256": "03" * 32,
             "bytes": 1, "epoch_end": True, "created_at": T2},
        ],
        "metric": [
            {"id": 1, "config_id": 1, "epoch": 0, "name": "val_accuracy", "value": 0.5, "at": T0},
            {"id": 2, "config_id": 1, "epoch": 0, "name": "val_loss", "value": 1.25, "at": T0},
            {"id": 3, "config_id": 1, "epoch": 1, "name": "val_accuracy", "value": 0.875, "at": T1},
            {"id": 4, "config_id": 1, "epoch": 1, "name": "val_loss", "value": 0.375, "at": T1},
            {"id": 5, "config_id": 1, "epoch": 1, "name": "params", "value": 2410.0, "at": T1},
            {"id": 6, "config_id": 2, "epoch": 0, "name": "val_loss", "value": 9.5, "at": T1},
            # epochs out of insertion order, and the best (lowest) loss is not the latest
            {"id": 7, "config_id": 4, "epoch": 1, "name": "val_loss", "value": 0.75, "at": T2},
            {"id": 8, "config_id": 4, "epoch": 0, "name": "val_loss", "value": 0.625, "at": T1},
            {"id": 9, "config_id": 4, "epoch": 1, "name": "val_mae", "value": 0.125, "at": T2},
        ],
        "sub_epoch": [
            {"id": 1, "config_id": 1, "epoch": 0, "partition": 0, "worker": "w0", "started_at": T0,
             "finished_at": T1, "outcome": "ok", "input_checkpoint_id": None, "output_checkpoint_id": 1,
             "rows": 718, "train_loss": 1.5, "train_accuracy": 0.4375, "compute_seconds": 2.5,
             "hop_seconds": 0.25, "detail": None},
            {"id": 2, "config_id": 1, "epoch": 1, "partition": 1, "worker": "w1", "started_at": T1,
             "finished_at": None, "outcome": "failed", "input_checkpoint_id": 1, "output_checkpoint_id": None,
             "rows": None, "train_loss": None, "train_accuracy": None, "compute_seconds": None,
             "hop_seconds": None, "detail": "Traceback: «worker died»"},
        ],
        "event": [
            {"id": 1, "actor": "alice", "action": "launch_workload", "object_type": "workload", "object_id": 1,
             "before": None, "after": {"status": "running"}, "at": T0},
            {"id": 2, "actor": "scheduler", "action": "set_priority", "object_type": "config", "object_id": 1,
             "before": {"priority": 0}, "after": {"priority": 2}, "at": T1},
            {"id": 3, "actor": "system", "action": "startup", "object_type": "server", "object_id": None,
             "before": None, "after": None, "at": T2},
        ],
    }
    if _at_least(revision, "0002"):
        # What 0002's backfill must compute from the metrics above, written out by hand.
        extra = {1: ({"epoch": 1, "val_accuracy": 0.875, "val_loss": 0.375, "params": 2410.0}, 0.875),
                 2: ({"epoch": 0, "val_loss": 9.5}, None),  # objective val_accuracy never reported
                 3: ({}, None),
                 4: ({"epoch": 1, "val_loss": 0.75, "val_mae": 0.125}, 0.625)}
        for row in data["config"]:
            row["latest_metrics"], row["best_objective"] = extra[row["id"]]
    if _at_least(revision, "0003"):
        data["export"] = [
            {"id": 1, "config_id": 1, "checkpoint_id": 2, "quantization": "float32", "path": "/ex/1.tflite",
             "sha256": "e1" * 32, "bytes": 40960, "keras_accuracy": 0.875, "tflite_accuracy": 0.875,
             "convert_seconds": 1.5, "created_at": T1},
            {"id": 2, "config_id": 1, "checkpoint_id": 2, "quantization": "int8", "path": "/ex/2.tflite",
             "sha256": "e2" * 32, "bytes": 10240, "keras_accuracy": None, "tflite_accuracy": None,
             "convert_seconds": 3.25, "created_at": T2},
        ]
    if _at_least(revision, "0004"):
        for row in data["workload"]:
            row["export_top_k"] = 3 if row["id"] == 1 else None
        data["device"] = [
            {"id": 1, "name": "pi-kitchen", "hardware": {"machine": "aarch64", "cpus": 4}, "interpreter": "litert",
             "status": "online", "registered_at": T0, "last_seen": T2},
            {"id": 2, "name": "jetson", "hardware": {}, "interpreter": "tflite-runtime", "status": "offline",
             "registered_at": T1, "last_seen": T1},
        ]
        data["profile_job"] = [
            {"id": 1, "export_id": 1, "device_id": 1, "status": "done", "attempts": 1, "max_attempts": 3,
             "runs": 50, "warmup": 5, "claimed_by": 1, "claimed_at": T1, "lease_expires_at": T2, "error": None,
             "result": {"latency_p50_ms": 1.5}, "created_at": T0, "finished_at": T2},
            {"id": 2, "export_id": 2, "device_id": None, "status": "queued", "attempts": 0, "max_attempts": 3,
             "runs": None, "warmup": None, "claimed_by": None, "claimed_at": None, "lease_expires_at": None,
             "error": None, "result": None, "created_at": T1, "finished_at": None},
        ]
        data["profile"] = [
            {"id": 1, "job_id": 1, "export_id": 1, "device_id": 1, "config_id": 1, "latency_p50_ms": 1.5,
             "latency_p95_ms": 2.75, "size_bytes": 40960, "peak_memory_bytes": 2 ** 33, "energy_mj": None,
             "runs": 50, "detail": {"threads": 1}, "created_at": T2},
        ]
        data["deployment"] = [
            {"id": 1, "config_id": 1, "export_id": 1, "format": "tflite", "name": "config-1", "host": "127.0.0.1",
             "port": 8601, "pid": 4242, "status": "stopped", "error": None, "started_at": T1, "stopped_at": T2},
        ]
        data["export_request"] = [
            {"id": 1, "config_id": 1, "quantizations": ["float32", "int8"], "profile": True, "origin": "user",
             "status": "done", "actor": "alice", "claimed_at": T1, "export_ids": [1, 2], "error": None,
             "created_at": T0, "finished_at": T2},
            {"id": 2, "config_id": 4, "quantizations": ["int8"], "profile": False, "origin": "top_k",
             "status": "failed", "actor": "scheduler", "claimed_at": None, "export_ids": None,
             "error": "no checkpoint", "created_at": T2, "finished_at": None},
        ]
    if _at_least(revision, "0005"):
        for row in data["workload"]:
            private = row["id"] == 1
            row["privacy"] = {"l2_norm_clip": 1.0, "noise_multiplier": 1.1, "target_epsilon": None, "delta": 1e-5,
                              "microbatches": None, "accountant": "rdp"} if private else None
            row["warnings"] = ["privacy.delta 1e-05 is not below 1/N = 0.0007"] if private else None
        for row in data["sub_epoch"]:
            ran = row["id"] == 1
            row["dp_q"], row["dp_sigma"], row["dp_steps"] = (64 / 718, 1.1, 12) if ran else (None, None, None)
    if _at_least(revision, "0006"):
        data["app_user"] = [
            {"id": 1, "name": "alice", "role": "editor", "created_at": T0, "revoked_at": None},
            {"id": 2, "name": "Zoë.viewer@lab", "role": "viewer", "created_at": T1, "revoked_at": T2},
        ]
        data["credential"] = [
            {"id": 1, "kind": "user", "lookup": "0123456789abcdef", "secret_hash": "$argon2id$v=19$m=8192,t=1,p=1$x$y",
             "user_id": 1, "device_id": None, "created_by": "root", "created_at": T0, "used_at": None,
             "revoked_at": None},
            {"id": 2, "kind": "enrol", "lookup": "fedcba9876543210", "secret_hash": "$argon2id$h2", "user_id": None,
             "device_id": 1, "created_by": "admin", "created_at": T1, "used_at": T1, "revoked_at": None},
            {"id": 3, "kind": "device", "lookup": "00112233aabbccdd", "secret_hash": "$argon2id$h3", "user_id": None,
             "device_id": 1, "created_by": "enrol:2", "created_at": T1, "used_at": None, "revoked_at": T2},
        ]
        data["web_session"] = [
            {"id": "a" * 64, "subject": "alice", "role": "editor", "credential_id": 1, "admin_fingerprint": None,
             "created_at": T1, "expires_at": T2},
            {"id": "b" * 64, "subject": "admin", "role": "admin", "credential_id": None,
             "admin_fingerprint": "c" * 64, "created_at": T0, "expires_at": T2},
        ]
    if _at_least(revision, "0007"):
        data["deployment"][0]["actor"] = "alice"
        for row in data["profile_job"]:
            row["actor"] = "bob" if row["id"] == 2 else None
        data["scheduler_lease"] = [
            {"id": 1, "holder": "9f" * 16, "host": "node-ä.example", "pid": 2 ** 22, "started_at": T0,
             "heartbeat_at": T1, "expires_at": T2},
        ]
    if _at_least(revision, "0008"):
        for row in data["workload"]:
            row["procedure_options"] = {"eta": 3, "min_epochs": 1, "median_stop": {"grace_epochs": 1}} \
                if row["id"] == 1 else None
        data["decision"] = [
            {"id": 1, "workload_id": 1, "key": "asha:rung1:config1", "kind": "pause", "config_id": 1,
             "source_config_id": None, "result_config_id": None, "reason": "asha: rung 1 (epoch 1), rank 2/2",
             "actor": "procedure:asha", "at": T1},
            {"id": 2, "workload_id": 1, "key": "pbt:exploit:config1@epoch2", "kind": "exploit", "config_id": 1,
             "source_config_id": 2, "result_config_id": 2, "reason": "pbt: bottom quantile — exploit ✓",
             "actor": "Zoë.viewer@lab", "at": T2},
        ]
    if _at_least(revision, "0009"):
        for row in data["workload"]:
            row["advisor"] = row["id"] == 2
        data["suggestion"] = [
            {"id": 1, "workload_id": 2, "config_id": 4, "procedure": "asha", "kind": "stop", "payload": {},
             "reason": "asha: rung 1 (epoch 1), rank 2/2, val_loss 0.75 > cutoff 0.625", "key": "asha:rung1:config4",
             "status": "pending", "decided_by": None, "decided_at": None, "detail": None, "created_at": T1},
            {"id": 2, "workload_id": 1, "config_id": 2, "procedure": "pbt", "kind": "exploit",
             "payload": {"source_config_id": 1, "hparams": {"lr": 0.0008, "units": 32}},
             "reason": "pbt: bottom 25 % at epoch 1", "key": "pbt:exploit:config2@epoch1", "status": "accepted",
             "decided_by": "Zoë", "decided_at": T2, "detail": None, "created_at": T1},
        ]
        data["evaluation_request"] = [
            {"id": 1, "workload_id": 1, "objective": {"metric": "val_recall@3", "direction": "max", "class_index": 3},
             "status": "done", "actor": "alice", "n_expected": 2, "n_done": 2, "error": None, "created_at": T1,
             "claimed_at": T1, "finished_at": T2},
            {"id": 2, "workload_id": 2, "objective": {"metric": "flops", "direction": "min"}, "status": "queued",
             "actor": "bob", "n_expected": 1, "n_done": 0, "error": None, "created_at": T2, "claimed_at": None,
             "finished_at": None},
        ]
    if _at_least(revision, "0010"):
        for row in data["workload"]:
            row["entry_options"] = ({"entry_args": {"num_classes": 10, "name": "Zoë"}, "bind_globals": {"x_train": "x"}}
                                    if row["id"] == 2 else None)
    if _at_least(revision, "0011"):
        for row in data["workload"]:
            row["weight"] = 3.5 if row["id"] == 2 else 1.0
            row["budget"] = ({"wall_seconds": 600.0, "worker_seconds": 120.5, "money": 0.25,
                              "price_per_worker_hour": 1.5} if row["id"] == 2 else None)
    if _at_least(revision, "0012"):
        for row in data["workload"]:
            row["notify"] = {"webhook": "https://ci.example.com/hooks/hopper?team=Zoë"} if row["id"] == 1 else None
        data["schedule"] = [
            {"id": 1, "name": "nightly ✓", "cron": "0 2 * * *", "timezone": "Europe/Berlin",
             "spec": {"name": "nightly", "model": "mlp", "dataset": "digits", "space": {"lr": 0.01}},
             "enabled": True, "next_run_at": T2, "created_by": "alice", "created_at": T0, "updated_at": T1},
            {"id": 2, "name": "weekly", "cron": "30 6 * * 1", "timezone": "UTC", "spec": {"name": "w", "dataset": 2},
             "enabled": False, "next_run_at": T1, "created_by": "Zoë.viewer@lab", "created_at": T1, "updated_at": T1},
        ]
        data["schedule_run"] = [
            {"id": 1, "schedule_id": 1, "due_at": T0, "claimed_at": T1, "claimed_by": "node-ä pid 4242",
             "workload_id": 1, "status": "launched", "error": None},
            {"id": 2, "schedule_id": 1, "due_at": T1, "claimed_at": T1, "claimed_by": "node-b pid 7",
             "workload_id": None, "status": "failed", "error": "dataset 'digits' does not exist"},
        ]
        data["webhook_delivery"] = [
            {"id": 1, "workload_id": 1, "event": "done", "url": "https://ci.example.com/hooks/hopper?team=Zoë",
             "payload": {"event": "workload.done", "best": {"config_id": 1, "metrics": {"val_accuracy": 0.97}}},
             "status": "pending", "attempts": 2, "next_attempt_at": T2, "last_error": "HTTP 500 Internal Server Error",
             "delivered_at": None, "created_at": T1},
            {"id": 2, "workload_id": 2, "event": "failed", "url": "http://127.0.0.1:9/x", "payload": {"best": None},
             "status": "delivered", "attempts": 1, "next_attempt_at": T1, "last_error": None, "delivered_at": T2,
             "created_at": T1},
        ]
    if _at_least(revision, "0013"):
        for row in data["sub_epoch"]:
            row["shards"] = [0, 2] if row["id"] == 1 else None
        data["worker_pool"] = [
            {"id": 1, "desired": 3, "remove_now": False, "requested_by": "Zoë", "requested_at": T1,
             "workers": [{"id": 0, "name": "local-0", "state": "active", "shards": {"4": [0, 2]}}],
             "reported_at": T2},
        ]
    if _at_least(revision, "0014"):
        data["note"] = [
            {"id": 1, "object_type": "workload", "object_id": 1, "author": "alice",
             "text": "Stopped the **lr=0.01** configs: they diverge ✓", "created_at": T1},
            {"id": 2, "object_type": "config", "object_id": 4, "author": "Zoë.viewer@lab",
             "text": "cloned with lr/2\n\n- see config 1", "created_at": T2},
        ]
    if _at_least(revision, "0015"):
        for row in data["workload"]:
            row["plan"] = "replicated" if row["id"] == 1 else "auto"
            row["plan_choice"] = ({"plan": "mop", "reason": "mop: the dataset 'tabular ✓' is 3.1 GB, over the 2048 MB "
                                   "worker data budget", "basis": "too_big", "decided_at": "2026-11-26T10:00:00+00:00"}
                                  if row["id"] == 2 else None)
    if revision not in _FIXTURED:
        raise AssertionError(f"migration {revision} has no fixture rows: extend rows_at() and UPGRADED_COLUMNS in "
                             f"{__file__} with the tables and columns it adds")
    return data


_FIXTURED = {"0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013",
             "0014", "0015"}

# Columns set after the row exists: cyclic foreign keys (config <-> checkpoint, workload -> config).
DEFERRED = {("config", "current_checkpoint_id"): {1: 2, 4: 3}, ("config", "warm_start_checkpoint_id"): {2: 1},
            ("workload", "parent_config_id"): {2: 1}, ("workload", "warm_start_checkpoint_id"): {2: 1},
            ("workload", "parent_workload_id"): {2: 1}}

# What a column a revision adds holds right after the upgrade, when that is not rows_at(revision)'s value
# (for 0002 it is: the backfill must produce exactly the hand-written values).
UPGRADED_COLUMNS = {"0004": {("workload", "export_top_k"): None},
                    "0005": {("workload", "privacy"): None, ("workload", "warnings"): None,
                             ("sub_epoch", "dp_q"): None, ("sub_epoch", "dp_sigma"): None,
                             ("sub_epoch", "dp_steps"): None},
                    "0007": {("deployment", "actor"): None, ("profile_job", "actor"): None},
                    "0008": {("workload", "procedure_options"): None},
                    "0009": {("workload", "advisor"): False},
                    "0010": {("workload", "entry_options"): None},
                    "0011": {("workload", "weight"): 1.0, ("workload", "budget"): None},
                    "0012": {("workload", "notify"): None},
                    "0013": {("sub_epoch", "shards"): None},
                    "0015": {("workload", "plan"): "auto", ("workload", "plan_choice"): None}}


def _with_deferred(data: dict[str, list[dict]]) -> dict[str, list[dict]]:
    data = copy.deepcopy(data)
    for (table, column), values in DEFERRED.items():
        for row in data[table]:
            row[column] = values.get(row["id"], row[column])
    return data


def expected_at(revision: str) -> dict[str, list[dict]]:
    return _with_deferred(rows_at(revision))


def expected_after_upgrade(parent: str, revision: str) -> dict[str, list[dict]]:
    """The parent's rows with the revision's new columns as the upgrade leaves them; new tables empty."""
    data = expected_at(revision)
    old_tables = set(expected_at(parent))
    out = {table: rows for table, rows in data.items() if table in old_tables}
    for (table, column), value in UPGRADED_COLUMNS.get(revision, {}).items():
        for row in out[table]:
            row[column] = value
    for table in set(data) - old_tables:
        out[table] = []
    return out


# -- reading and writing through the schema the database has now ---------------------------------------
def _reflect(conn: sa.Connection, table: str) -> sa.Table:
    return sa.Table(table, sa.MetaData(), autoload_with=conn)


def insert_rows(engine: sa.Engine, data: dict[str, list[dict]], only_new: dict[str, list[dict]] | None = None) -> None:
    """Insert DATA's rows (skipping ids ONLY_NEW already holds), then the deferred cyclic references."""
    with engine.begin() as conn:
        for table, rows in data.items():
            present = {r["id"] for r in (only_new or {}).get(table, [])}
            fresh = [{k: v for k, v in r.items() if (table, k) not in DEFERRED} for r in rows if r["id"] not in present]
            if fresh:
                conn.execute(_reflect(conn, table).insert(), fresh)
        for (table, column), values in DEFERRED.items():
            if table not in data:
                continue
            reflected = _reflect(conn, table)
            for row_id, value in values.items():
                conn.execute(reflected.update().where(reflected.c.id == row_id).values({column: value}))


def update_rows(engine: sa.Engine, data: dict[str, list[dict]]) -> None:
    """Write every column of DATA's rows onto the rows with the same ids (for columns a revision added)."""
    with engine.begin() as conn:
        for table, rows in data.items():
            reflected = _reflect(conn, table)
            for row in rows:
                conn.execute(reflected.update().where(reflected.c.id == row["id"]).values(row))


def assert_rows(engine: sa.Engine, expected: dict[str, list[dict]], where: str) -> None:
    """Every expected table exists with exactly the expected columns, ids and values; no other app table does."""
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(expected), f"{where}: tables {sorted(tables)}, expected {sorted(expected)}"
    with engine.connect() as conn:
        for table, rows in expected.items():
            reflected = _reflect(conn, table)
            columns = {c.name for c in reflected.columns}
            fixture_columns = set(rows[0]) if rows else columns
            assert columns == fixture_columns, (
                f"{where}: table {table} has columns {sorted(columns ^ fixture_columns)} that the fixtures "
                "do not know (or lacks ones they expect): update rows_at()")
            got = {r["id"]: dict(r) for r in conn.execute(sa.select(reflected)).mappings()}
            assert sorted(got) == sorted(r["id"] for r in rows), f"{where}: {table} ids"
            for row in rows:
                for column, value in row.items():
                    actual = got[row["id"]][column]
                    assert actual == value and type(actual) is type(value), (
                        f"{where}: {table}.{column} of row {row['id']} is {actual!r}, expected {value!r}")


# -- the test ------------------------------------------------------------------------------------------
STEPS = [(rev, REVISIONS[i - 1] if i else None) for i, rev in enumerate(REVISIONS)]
# Every step runs on SQLite; on PostgreSQL the newest ones (a released migration never changes, and each was
# stepped on PostgreSQL when it was new; the whole chain still goes up and down there in test_store.py): each
# PostgreSQL step first migrates a fresh database to its parent, so all of them cost minutes.
NEWEST_ON_POSTGRES = 4
CASES = [pytest.param("sqlite", rev, parent, id=f"sqlite-{parent or 'base'}-to-{rev}") for rev, parent in STEPS] + [
    pytest.param("postgres", rev, parent, id=f"postgres-{parent or 'base'}-to-{rev}", marks=pytest.mark.postgres)
    for rev, parent in STEPS[-NEWEST_ON_POSTGRES:]]


@pytest.fixture
def empty_store(request, tmp_path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"m_{uuid.uuid4().hex[:12]}")
    store = Store(url, check_schema=False)
    yield store
    store.dispose()


def test_revisions_are_a_single_chain_known_to_the_fixtures():
    assert REVISIONS[0] == "0001" and len(set(REVISIONS)) == len(REVISIONS)
    assert set(REVISIONS) == _FIXTURED, "a new migration needs fixture rows here: see rows_at()"


@pytest.mark.parametrize("empty_store,revision,parent", CASES, indirect=["empty_store"])
def test_one_step_up_and_down_keeps_every_row(empty_store: Store, revision: str, parent: str | None):
    store, engine = empty_store, empty_store.engine
    if parent is None:
        # The first revision: nothing to keep on the way up; on the way down (`hopper db downgrade`'s
        # default is base) a populated store must still empty cleanly, cyclic foreign keys included.
        store.upgrade(revision)
        insert_rows(engine, expected_at(revision))
        assert_rows(engine, expected_at(revision), f"at {revision}")
        store.downgrade("base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        assert store.current_revision() is None
        return

    store.upgrade(parent)
    before = expected_at(parent)
    insert_rows(engine, before)
    assert_rows(engine, before, f"seeded at {parent}")

    store.upgrade(revision)
    assert store.current_revision() == revision
    assert_rows(engine, expected_after_upgrade(parent, revision), f"after upgrade {parent}->{revision}")

    # Fill what the revision added (new tables and columns), then go back down: the parent's rows stay.
    full = expected_at(revision)
    insert_rows(engine, {t: rows for t, rows in full.items() if t not in before})
    update_rows(engine, {t: rows for t, rows in full.items() if t in before})
    assert_rows(engine, full, f"filled at {revision}")

    store.downgrade(parent)
    assert store.current_revision() == parent
    assert_rows(engine, before, f"after downgrade {revision}->{parent}")

    # and up again: the same rows come through a second upgrade
    store.upgrade(revision)
    assert_rows(engine, expected_after_upgrade(parent, revision), f"after re-upgrade {parent}->{revision}")
