"""Advisor mode: a workload's procedure suggests, people decide.

A workload launched with ``advisor: true`` runs its procedure as usual, but the procedure's decisions (stop this
config at rung 2, exploit config 7 into config 3, promote config 5) are kept as suggestions instead of applied.
A person accepts or rejects each; an accepted one goes through ``SteeringServices.apply_decision``, the same path
as the procedure's own actions and people's manual ones, and is audited as "suggested by asha, accepted by alice".
A rejected one never takes effect. One the state made moot (its config stopped or finished meanwhile) expires
with the reason instead of being applied.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hopper.engine.entities import SuggestionInfo
from hopper.engine.errors import InvalidState, ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.status import ConfigStatus, DecisionKind, SuggestionStatus
from hopper.engine.store.suggestions import moot_reason

if TYPE_CHECKING:
    from hopper.engine.procedures import Decision
    from hopper.engine.services.steering import SteeringServices
    from hopper.engine.store import Store
    from hopper.settings import Settings


class AdvisorServices(ServiceContext):
    """Suggestions of advisor-mode procedures, and people's answers to them.

    Args:
        store: the config store.
        settings: the server's settings.
        steering: applies accepted suggestions (``apply_decision``), exactly as the procedure would have.
    """

    def __init__(self, store: Store, settings: Settings, steering: SteeringServices) -> None:
        super().__init__(store, settings)
        self._steering = steering

    def list_suggestions(self, workload_id: int, *, status: str | None = None) -> list[SuggestionInfo]:
        """A workload's suggestions with their reasons: pending ones first, then the decided ones, newest first."""
        if status is not None and status not in SuggestionStatus.__members__.values():
            raise ValidationError(f"status must be one of {', '.join(SuggestionStatus)}, got {status!r}",
                                  field="status")
        return self.store.suggestions.list(workload_id, status=status)

    def accept_suggestion(self, workload_id: int, suggestion_id: int, *, actor: str | None = None) -> SuggestionInfo:
        """Apply a pending suggestion through the steering services (audited as suggested by its procedure and
        accepted by ``actor``). A stop takes effect after the config's running sub-epoch; an exploit's new config
        and a promoted config start at the next free slot.

        Raises:
            NotFound: no such suggestion in this workload.
            InvalidState: it was already decided, or it expired because the state made it moot (the message says
                why; nothing was applied).
        """
        actor = actor or default_actor()
        suggestion = self.store.suggestions.get(suggestion_id, workload_id=workload_id)
        accepted = self.store.suggestions.decide(suggestion_id, SuggestionStatus.ACCEPTED, actor=actor)
        try:
            applied = self._steering.apply_decision(workload_id, self.decision_of(suggestion, actor), actor=actor)
        except InvalidState as exc:
            why = exc.message
        else:
            if applied is not None:
                return accepted
            # The scheduler moved the config on between the check and the write.
            config = self.store.configs.get(suggestion.config_id, with_metrics=False)
            why = moot_reason(suggestion.kind, config.id, config.status) or \
                f"config {config.id} is {ConfigStatus(config.status).label}: the decision no longer applied"
        self.store.suggestions.expire(suggestion_id, why, actor=actor)
        raise InvalidState(f"suggestion {suggestion_id} expired: {why}; it was not applied")

    def reject_suggestion(self, workload_id: int, suggestion_id: int, *, actor: str | None = None) -> SuggestionInfo:
        """Reject a pending suggestion: it never takes effect, and the procedure does not suggest it again."""
        self.store.suggestions.get(suggestion_id, workload_id=workload_id)
        return self.store.suggestions.decide(suggestion_id, SuggestionStatus.REJECTED, actor=actor or default_actor())

    @staticmethod
    def decision_of(suggestion: SuggestionInfo, actor: str) -> Decision:
        """The procedure's decision again, its reason naming who suggested and who accepted it (the audit log)."""
        from hopper.engine.procedures import Decision

        decision = Decision(kind=DecisionKind(suggestion.kind), config_id=suggestion.config_id,
                            reason=suggestion.reason, source_config_id=suggestion.payload.get("source_config_id"),
                            hparams=suggestion.payload.get("hparams"), key=suggestion.key)
        return dataclasses.replace(
            decision, reason=f"suggested by {suggestion.procedure}, accepted by {actor}: {suggestion.reason}")
