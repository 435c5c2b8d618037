"""The webhook outbox: one delivery per (workload, terminal status), retried with backoff until accepted.

``enqueue_ended`` writes the summary of every ended workload that asked to be reported and has no delivery for
that status yet (the unique key makes a second notifier's insert collide instead of doubling it). ``claim_due``
takes due deliveries by a conditional update of ``next_attempt_at`` (pushed past the request timeout), so a
second notifier skips what the first is sending, and a notifier that dies mid-request leaves the delivery to be
retried once that claim runs out: nothing is lost, and nothing is sent twice unless a request outlives its claim
or dies after the receiver accepted it (each POST carries the delivery id for the receiver to drop repeats).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select, update

from hopper.engine.entities import WebhookDeliveryInfo
from hopper.engine.errors import Conflict
from hopper.engine.status import ENDED_WORKLOAD, WebhookStatus, check_transition
from hopper.engine.store._common import Repository, get_row
from hopper.engine.store.models import ConfigRow, SubEpochRow, WebhookDeliveryRow, WorkloadRow, utcnow
from hopper.engine.store.workloads import _best, _counts


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def _summary(session, workload: WorkloadRow) -> dict:  # noqa: ANN001
    """What a webhook reports of an ended workload: its best config, epochs and the compute it used."""
    best = _best(session, workload)
    best_out = None
    if best is not None:
        config = session.get(ConfigRow, best["config_id"])
        best_out = {"config_id": config.id, "hparams": dict(config.hparams),
                    "metrics": dict(config.latest_metrics or {}), "epochs": config.epochs_done,
                    "objective": {**workload.objectives[0], "value": best["value"]}}
    spans = list(session.execute(
        select(SubEpochRow.started_at, SubEpochRow.finished_at).join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
        .where(ConfigRow.workload_id == workload.id, SubEpochRow.finished_at.is_not(None))))
    epochs = session.execute(select(ConfigRow.epochs_done).where(ConfigRow.workload_id == workload.id)).scalars()
    return {
        "event": f"workload.{workload.status}",
        "workload": {"id": workload.id, "name": workload.name, "status": workload.status, "error": workload.error,
                     "procedure": workload.procedure, "owner": workload.owner},
        "best": best_out,
        "configs": _counts(session, [workload.id]).get(workload.id, {}),
        "epochs": {"max_epochs": workload.max_epochs, "trained": int(sum(epochs))},
        # Every finished sub-epoch counts, lost and failed ones too: a worker was busy with it.
        "compute": {"worker_seconds": round(sum((f - s).total_seconds() for s, f in spans), 3),
                    "sub_epochs": len(spans)},
        "started_at": _iso(workload.created_at),
        "finished_at": _iso(workload.updated_at),
    }


class WebhookStore(Repository):
    def enqueue_ended(self, now: datetime | None = None) -> list[WebhookDeliveryInfo]:
        """Queue a delivery for each ended workload with a webhook and none yet for its status; returns them."""
        now = now or utcnow()
        ended = [str(s) for s in ENDED_WORKLOAD]
        try:
            with self._session() as session:
                rows = list(session.scalars(select(WorkloadRow).where(
                    WorkloadRow.notify.is_not(None), WorkloadRow.status.in_(ended),
                    ~exists().where(and_(WebhookDeliveryRow.workload_id == WorkloadRow.id,
                                         WebhookDeliveryRow.event == WorkloadRow.status)))
                    .order_by(WorkloadRow.id)))
                out = []
                for workload in rows:
                    url = (workload.notify or {}).get("webhook")
                    if not url:
                        continue
                    delivery = WebhookDeliveryRow(workload_id=workload.id, event=workload.status, url=url,
                                                  payload=_summary(session, workload), status=WebhookStatus.PENDING,
                                                  attempts=0, next_attempt_at=now)
                    session.add(delivery)
                    session.flush()
                    out.append(WebhookDeliveryInfo.from_row(delivery))
                return out
        except Conflict:
            return []  # another notifier queued them first

    def claim_due(self, now: datetime, hold_seconds: float, limit: int = 20) -> list[WebhookDeliveryInfo]:
        """Take up to ``limit`` due pending deliveries, each held for ``hold_seconds`` and counted as an attempt."""
        held = now + timedelta(seconds=hold_seconds)
        with self._session() as session:
            due = list(session.execute(
                select(WebhookDeliveryRow.id, WebhookDeliveryRow.next_attempt_at)
                .where(WebhookDeliveryRow.status == WebhookStatus.PENDING, WebhookDeliveryRow.next_attempt_at <= now)
                .order_by(WebhookDeliveryRow.next_attempt_at).limit(limit)))
            claimed = []
            for delivery_id, was_due in due:
                result = session.execute(
                    update(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.next_attempt_at == was_due,
                           WebhookDeliveryRow.status == WebhookStatus.PENDING)
                    .values(next_attempt_at=held, attempts=WebhookDeliveryRow.attempts + 1)
                    .execution_options(synchronize_session=False))
                if result.rowcount == 1:
                    claimed.append(delivery_id)
            return [WebhookDeliveryInfo.from_row(r) for r in session.scalars(
                select(WebhookDeliveryRow).where(WebhookDeliveryRow.id.in_(claimed))
                .order_by(WebhookDeliveryRow.id).execution_options(populate_existing=True))]

    def record_attempt(self, delivery_id: int, *, error: str | None, retry_at: datetime | None) -> WebhookDeliveryInfo:
        """An attempt's outcome: delivered (``error`` None), retried at ``retry_at``, or given up (no retry_at)."""
        with self._session() as session:
            row = get_row(session, WebhookDeliveryRow, delivery_id, "webhook_delivery")
            if error is None:
                check_transition(row.status, WebhookStatus.DELIVERED, what=f"webhook delivery {delivery_id}")
                row.status, row.delivered_at = WebhookStatus.DELIVERED, utcnow()
            else:
                row.last_error = error[:2000]
                if retry_at is None:
                    check_transition(row.status, WebhookStatus.FAILED, what=f"webhook delivery {delivery_id}")
                    row.status = WebhookStatus.FAILED
                else:
                    row.next_attempt_at = retry_at
            session.flush()
            return WebhookDeliveryInfo.from_row(row)

    def list(self, workload_ids: Iterable[int] | None = None) -> list[WebhookDeliveryInfo]:
        """Deliveries (of the given workloads), oldest first."""
        with self._session() as session:
            stmt = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)
            if workload_ids is not None:
                stmt = stmt.where(WebhookDeliveryRow.workload_id.in_(list(workload_ids)))
            return [WebhookDeliveryInfo.from_row(r) for r in session.scalars(stmt)]
