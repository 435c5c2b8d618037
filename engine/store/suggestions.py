"""Suggestions: a procedure's decisions held for people when its workload runs it as an advisor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import select

from hopper.engine.entities import SuggestionInfo
from hopper.engine.errors import InvalidState, ValidationError
from hopper.engine.status import (
    FINISHED_CONFIG,
    RUNNABLE_CONFIG,
    ConfigStatus,
    DecisionKind,
    SuggestionStatus,
    check_transition,
)
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import ConfigRow, SuggestionRow, WorkloadRow, utcnow


class DecisionLike(Protocol):
    """What the store keeps of a procedure's ``Decision`` (engine.procedures): the store never imports them."""

    kind: Any
    config_id: int
    reason: str
    source_config_id: int | None
    hparams: dict | None
    key: str


def moot_reason(kind: str, config_id: int, status: str) -> str | None:
    """Why a suggestion about a config in ``status`` no longer applies, or None while it still does.

    A person (or the end of training) may have got there first: a stop, pause or exploit of a config that already
    finished would change nothing, and a promote only continues a config that waits at a rung.
    """
    current = ConfigStatus(status)
    if kind in (DecisionKind.STOP, DecisionKind.EXPLOIT) and current in FINISHED_CONFIG:
        return f"config {config_id} is already {current.label}"
    if kind == DecisionKind.PAUSE and current not in RUNNABLE_CONFIG:
        return f"config {config_id} is already {current.label}"
    if kind == DecisionKind.PROMOTE and (current in RUNNABLE_CONFIG or current in FINISHED_CONFIG):
        return f"config {config_id} no longer waits at a rung: it is {current.label}"
    return None


def _expire(session, row: SuggestionRow, why: str, actor: str) -> None:  # noqa: ANN001
    check_transition(row.status, SuggestionStatus.EXPIRED, what=f"suggestion {row.id}", action="expire")
    before = row.status
    row.status, row.detail = SuggestionStatus.EXPIRED, why
    row.decided_at = utcnow()
    add_event(session, actor, "expire_suggestion", "suggestion", row.id, {"status": before},
              {"status": row.status, "detail": row.detail, "config_id": row.config_id, "kind": row.kind})


class SuggestionStore(Repository):
    def record(self, workload_id: int, procedure: str, decisions: Iterable[DecisionLike]) -> list[SuggestionInfo]:
        """Keep a procedure's decisions as pending suggestions, skipping keys already suggested (a rebuilt procedure
        repeats itself) and decisions already moot, and expire the workload's pending suggestions that the state has made moot, in one
        transaction. Returns the suggestions added now."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            known = set(session.scalars(select(SuggestionRow.key).where(SuggestionRow.workload_id == workload_id)))
            added = []
            for decision in decisions:
                if not decision.key:
                    raise ValidationError(f"a {decision.kind} decision about config {decision.config_id} has no key: "
                                          "it could be suggested twice", field="key")
                if decision.key in known:
                    continue
                config = get_row(session, ConfigRow, decision.config_id, "config")
                if moot_reason(str(DecisionKind(decision.kind)), config.id, config.status):
                    # Already true of the config (ASHA's promotion of a config that never paused, since advisor
                    # mode applied no pause): nothing for a person to decide.
                    continue
                known.add(decision.key)
                payload: dict[str, Any] = {}
                if decision.source_config_id is not None:
                    payload["source_config_id"] = decision.source_config_id
                if decision.hparams is not None:
                    payload["hparams"] = dict(decision.hparams)
                row = SuggestionRow(workload_id=workload_id, config_id=decision.config_id, procedure=procedure,
                                    kind=str(DecisionKind(decision.kind)), payload=payload, reason=decision.reason,
                                    key=decision.key, status=SuggestionStatus.PENDING)
                session.add(row)
                added.append(row)
            session.flush()
            self._expire_moot(session, workload_id, actor=procedure)
            return [SuggestionInfo.from_row(r) for r in added if r.status == SuggestionStatus.PENDING]

    @staticmethod
    def _expire_moot(session, workload_id: int, *, actor: str) -> None:  # noqa: ANN001
        stmt = (select(SuggestionRow, ConfigRow.status).join(ConfigRow, ConfigRow.id == SuggestionRow.config_id)
                .where(SuggestionRow.workload_id == workload_id, SuggestionRow.status == SuggestionStatus.PENDING))
        for row, config_status in session.execute(stmt):
            why = moot_reason(row.kind, row.config_id, config_status)
            if why:
                _expire(session, row, why, actor)

    def list(self, workload_id: int, *, status: str | None = None) -> list[SuggestionInfo]:
        """A workload's suggestions, pending ones first, then newest first."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            stmt = select(SuggestionRow).where(SuggestionRow.workload_id == workload_id)
            if status:
                stmt = stmt.where(SuggestionRow.status == SuggestionStatus(status))
            rows = list(session.scalars(stmt.order_by(SuggestionRow.id.desc())))
            rows.sort(key=lambda r: r.status != SuggestionStatus.PENDING)
            return [SuggestionInfo.from_row(r) for r in rows]

    def get(self, suggestion_id: int, *, workload_id: int | None = None) -> SuggestionInfo:
        """One suggestion; with ``workload_id``, a suggestion of another workload is reported as not found."""
        with self._session() as session:
            row = get_row(session, SuggestionRow, suggestion_id, "suggestion")
            if workload_id is not None and row.workload_id != workload_id:
                get_row(session, SuggestionRow, -1, "suggestion")  # the same 404 as a missing id
            return SuggestionInfo.from_row(row)

    def decide(self, suggestion_id: int, target: SuggestionStatus, *, actor: str,
               detail: str | None = None) -> SuggestionInfo:
        """Accept or reject a pending suggestion (audited). An accept finds the suggestion moot when its config's
        state has moved on: it expires instead, with the reason, and ``InvalidState`` says so."""
        moot = None
        with self._session() as session:
            row = get_row(session, SuggestionRow, suggestion_id, "suggestion")
            verb = "accept" if target == SuggestionStatus.ACCEPTED else "reject"
            if row.status != SuggestionStatus.PENDING:
                by = f" by {row.decided_by}" if row.decided_by else ""
                raise InvalidState(f"cannot {verb} suggestion {suggestion_id}: it is already {row.status}{by}"
                                   f"{f' ({row.detail})' if row.detail else ''}")
            config = session.get(ConfigRow, row.config_id)
            if target == SuggestionStatus.ACCEPTED:
                moot = moot_reason(row.kind, row.config_id, config.status)
            if moot:
                _expire(session, row, moot, actor)
                row.decided_by = actor
            else:
                check_transition(row.status, target, what=f"suggestion {suggestion_id}", action=verb)
                row.status, row.decided_by, row.decided_at, row.detail = target, actor, utcnow(), detail
                add_event(session, actor, f"{verb}_suggestion", "suggestion", row.id,
                          {"status": SuggestionStatus.PENDING.value},
                          {"status": row.status, "config_id": row.config_id, "kind": row.kind, "reason": row.reason,
                           "summary": f"suggested by {row.procedure}, {target.value} by {actor}"})
            info = SuggestionInfo.from_row(row)
        if moot:
            raise InvalidState(f"suggestion {suggestion_id} expired: {moot}; it was not applied")
        return info

    def expire(self, suggestion_id: int, why: str, *, actor: str) -> SuggestionInfo:
        """An accepted suggestion that could not be applied (the scheduler got there first) expires, with why."""
        with self._session() as session:
            row = get_row(session, SuggestionRow, suggestion_id, "suggestion")
            _expire(session, row, why, actor)
            return SuggestionInfo.from_row(row)

    def is_advisor(self, workload_id: int) -> bool:
        """Whether the workload's procedure suggests (advisor mode) rather than acts."""
        with self._session() as session:
            return bool(get_row(session, WorkloadRow, workload_id, "workload").advisor)
