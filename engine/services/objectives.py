"""Objectives added to a running workload: ranked on without retraining.

Adding an objective appends it to the workload (configs trained from now on report it at each epoch end) and
queues an evaluation request for the epoch-end checkpoints already kept. The export worker (a thread of
``hopper serve`` or ``hopper export-worker``) runs each request in a child process
(``hopper objective evaluate``), so the web process never loads TensorFlow; every checkpoint gets the metric row
of its epoch, and rankings and Pareto fronts over the workload's objectives include it once measured.
"""

from __future__ import annotations

from hopper.engine import objectives as objective_math
from hopper.engine.entities import ConfigInfo, EvaluationInfo
from hopper.engine.errors import ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.specs import ObjectiveSpec, parse_spec


class ObjectiveServices(ServiceContext):
    """A workload's objectives after launch."""

    def add_objective(self, workload_id: int, objective: dict | ObjectiveSpec, *,
                      actor: str | None = None) -> EvaluationInfo:
        """Add an objective to a workload; the checkpoints already trained are re-evaluated for it by a worker.

        Returns the evaluation request: ``n_expected`` is the number of checkpoint evaluations (configs x kept
        epoch-end checkpoints without the metric); 0 (and done) when every epoch already reports it.

        Raises:
            ValidationError: an unknown metric (neither reported by the models nor computed by Hopper), a class or
                cost matrix that does not fit the dataset.
            Conflict: the workload already has this objective.
        """
        spec = objective if isinstance(objective, ObjectiveSpec) else parse_spec(ObjectiveSpec, objective)
        workload = self.store.workloads.get(workload_id)
        dataset = self.store.datasets.get(workload.dataset_id)
        try:
            resolved = objective_math.resolve([spec.stored()], task=dataset.task, classes=dataset.classes)[0]
        except ValidationError as exc:
            field = (exc.field or "").removeprefix("objectives.0.") or "metric"
            raise ValidationError(exc.message.removeprefix("objectives.0: "), field=field) from None
        measured = not objective_math.is_computed(spec.metric)
        reported = {m["name"] for rows in self.store.configs.workload_metrics(workload_id).values() for m in rows}
        # Before the first epoch end nobody knows what the models report: a Keras metric is taken on trust.
        if measured and reported and spec.metric not in reported:
            raise ValidationError(
                f"{spec.metric} is not reported by this workload's models and Hopper cannot compute it from a "
                "checkpoint; Hopper computes flops, val_balanced_accuracy, val_recall@<class> and val_cost",
                field="metric")
        return self.store.evaluations.add_objective(workload_id, resolved, actor=actor or default_actor(),
                                                    measured=measured)

    def list_evaluations(self, workload_id: int) -> list[EvaluationInfo]:
        """The evaluation requests of a workload's added objectives, oldest first."""
        return self.store.evaluations.list(workload_id)

    def get_evaluation(self, request_id: int) -> EvaluationInfo:
        """One evaluation request with its progress (``n_done`` of ``n_expected``)."""
        return self.store.evaluations.get(request_id)

    def claim_evaluation(self, request_id: int | None = None) -> EvaluationInfo | None:
        """The oldest queued evaluation request (or the given one, if queued), now running; None when none is."""
        return self.store.evaluations.claim(request_id)

    def finish_evaluation(self, request_id: int, *, error: str | None = None) -> EvaluationInfo:
        """Mark an evaluation request done, or failed with the reason."""
        return self.store.evaluations.finish(request_id, error=error)

    def rank_configs(self, workload_id: int, metric: str | None = None) -> list[ConfigInfo]:
        """A workload's configs best first on one of its objectives (the primary by default): the latest value of
        the metric, configs without one last."""
        workload = self.store.workloads.get(workload_id)
        by_name = {o["metric"]: o for o in workload.objectives}
        metric = metric or workload.objectives[0]["metric"]
        if metric not in by_name:
            raise ValidationError(f"{metric} is not an objective of workload {workload_id}: "
                                  f"{', '.join(by_name)}", field="metric")
        sign = -1.0 if by_name[metric]["direction"] == "max" else 1.0
        configs = self.store.configs.page(workload_id, limit=None)[0]
        return sorted(configs, key=lambda c: (metric not in c.latest_metrics,
                                              sign * float(c.latest_metrics.get(metric, 0.0)), c.id))
