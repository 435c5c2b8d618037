"""Measure an objective added to a running workload on the epoch-end checkpoints already kept (worker side).

Run in a child process of the export worker (``hopper objective evaluate REQUEST``), never in the web process:
it loads TensorFlow. One model is built per config and each of its kept epoch-end checkpoints is loaded into it
in turn, then measured on the validation split exactly as the sub-epoch runner measures a new epoch
(``extra_objectives``), so old and new epochs are comparable.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from hopper.engine.entities import EvaluationInfo
from hopper.mop_scheduler.worker.objectives import extra_objectives

log = logging.getLogger("hopper.mop_scheduler.worker.reevaluate")


def run_evaluation(store: Any, request_id: int) -> EvaluationInfo:
    """Evaluate every checkpoint of the request still lacking its metric; returns the finished request.

    Args:
        store: the config store (``hopper.engine.store.Store``).
        request_id: a claimed (running) evaluation request.
    """
    try:
        done = _evaluate(store, request_id)
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything; the request records it
        log.warning("evaluation request %d failed: %s", request_id, exc)
        return store.evaluations.finish(request_id, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    log.info("evaluation request %d: %d checkpoints measured", request_id, done)
    return store.evaluations.finish(request_id)


def _evaluate(store: Any, request_id: int) -> int:
    from hopper.engine.data import read_partition
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory

    work = store.evaluations.work(request_id)
    if not work.checkpoints:
        return 0
    metric = work.objective["metric"]
    x_val, y_val = read_partition(work.validation_path, work.feature_shape)
    factory = ModelFactory(work.model_ref, work.feature_shape, work.n_outputs, work.task, entry_point=work.entry_point)
    models: dict[int, Any] = {}
    for item in work.checkpoints:
        if item.config_id not in models:
            models = {item.config_id: factory.build(item.hparams)}  # one config at a time: memory stays flat
        model = models[item.config_id]
        load_checkpoint(model, item.path, item.sha256)
        value = extra_objectives(model, x_val, y_val, [work.objective], work.n_outputs)[metric]
        store.evaluations.record(request_id, item.config_id, item.epoch, value)
    return len(work.checkpoints)
