"""Which execution plan a workload runs: MOP (data partitioned, models hop) or data-replicated.

Pure: no store, no clock. Under MOP each worker holds its shards of the data and a config hops from worker to
worker, paying a hop (build or checkpoint read, checkpoint write, dispatch and commit) per worker per epoch.
Under the replicated plan every worker holds the whole dataset and a config trains a whole epoch per dispatch:
one hop per epoch instead of one per worker, for W times the data on each worker. Replication therefore pays
when the data is small enough to sit on every worker and the hops are a noticeable share of a MOP sub-epoch;
on large data (or cheap hops) MOP wins: its memory per worker is 1/W of the data and its hops are negligible.

:func:`choose_plan` decides from the dataset's size against the worker data memory budget and from the costs
the workload's committed sub-epochs measured; the scheduler asks again at each of the workload's epoch ends,
and the policy applies a change to a config only at the start of its next epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

AUTO, MOP, REPLICATED = "auto", "mop", "replicated"
PLANS = (AUTO, MOP, REPLICATED)

#: Replicate when the per-dispatch overhead is more than this share of a MOP sub-epoch (hop + compute).
OVERHEAD_SHARE = 0.05
#: With no worker data memory budget (``worker_data_memory_mb = 0``), replicate datasets up to this size.
UNLIMITED_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class SubEpochCosts:
    """Sums over a workload's committed sub-epochs (the ledger keeps them).

    Attributes:
        wall_seconds: dispatch to commit.
        hop_seconds: what the worker spent outside training: model build or checkpoint read, checkpoint write.
        compute_seconds: training (and evaluation at epoch ends).
        rows: training rows the sub-epochs went through.
        count: how many sub-epochs.
    """

    wall_seconds: float = 0.0
    hop_seconds: float = 0.0
    compute_seconds: float = 0.0
    rows: int = 0
    count: int = 0

    def overhead_share(self, rows_per_mop_sub_epoch: float) -> float | None:
        """The share of a MOP sub-epoch of ``rows_per_mop_sub_epoch`` rows that its per-dispatch overhead takes
        (None: nothing measured yet). Compute is scaled per row, so sub-epochs measured under either plan give
        the same estimate; the overhead is everything of a sub-epoch's wall time that is not compute, at least
        the worker's own hop."""
        if self.count <= 0 or self.rows <= 0 or self.compute_seconds <= 0:
            return None
        overhead = max(self.hop_seconds, self.wall_seconds - self.compute_seconds) / self.count
        compute = self.compute_seconds / self.rows * rows_per_mop_sub_epoch
        return overhead / (overhead + compute) if overhead + compute > 0 else None


@dataclass(frozen=True)
class PlanChoice:
    """A plan with its one-line reason; ``basis`` names the rule that decided it (a change of basis is worth
    recording even when the plan stays)."""

    plan: str
    reason: str
    basis: str

    def record(self, decided_at: datetime) -> dict:
        """As the workload stores and shows it."""
        return {"plan": self.plan, "reason": self.reason, "basis": self.basis, "decided_at": decided_at.isoformat()}


def size_text(n_bytes: float) -> str:
    """Bytes as people read them (1.4 MiB, 3.1 GiB)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(n_bytes)} B"


def choose_plan(*, requested: str, dataset_name: str, dataset_bytes: int, budget_bytes: int, workers: int,
                train_rows: int, costs: SubEpochCosts | None = None, private: bool = False) -> PlanChoice:
    """The plan a workload runs now, and why.

    Args:
        requested: the workload's ``plan``: ``auto`` chooses; ``mop`` or ``replicated`` force one.
        dataset_name: for the reason.
        dataset_bytes: the whole dataset (training rows and validation split) as a worker holds it.
        budget_bytes: a worker's data memory budget (0: none, then ``UNLIMITED_BUDGET_BYTES`` decides).
        workers: workers taking tasks now.
        train_rows: the dataset's training rows (a MOP sub-epoch trains 1/``workers`` of them).
        costs: what the workload's committed sub-epochs measured (None or empty: nothing yet).
        private: it trains with DP-SGD, whose noise is calibrated on each partition's size.

    Raises:
        ValueError: ``requested`` is not one of ``PLANS``.
    """
    if requested not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)}, not {requested!r}")
    size = size_text(dataset_bytes)
    if requested == MOP:
        return PlanChoice(MOP, f"mop: the workload's plan asks for it ({dataset_name} is {size}, 1/{max(1, workers)} "
                               "of it on each worker)", "forced")
    if requested == REPLICATED:
        return PlanChoice(REPLICATED, f"replicated: the workload's plan asks for it ({dataset_name} is {size}, all of "
                                      "it on every worker)", "forced")
    if private:
        return PlanChoice(MOP, "mop: the workload trains with DP-SGD, whose noise is calibrated on each partition's "
                               "size", "private")
    if workers <= 1:
        return PlanChoice(MOP, f"mop: one worker holds all of {dataset_name} under either plan", "one_worker")
    if budget_bytes > 0:
        limit, limit_text = budget_bytes, f"the {size_text(budget_bytes)} worker data budget"
    else:
        limit, limit_text = UNLIMITED_BUDGET_BYTES, (f"the {size_text(UNLIMITED_BUDGET_BYTES)} replication threshold "
                                                     "(no worker data budget is set)")
    if dataset_bytes > limit:
        return PlanChoice(MOP, f"mop: {dataset_name} is {size}, over {limit_text}", "too_big")
    share = (costs or SubEpochCosts()).overhead_share(train_rows / workers)
    fits = f"{dataset_name} is {size}, under {limit_text}"
    if share is None:
        return PlanChoice(REPLICATED, f"replicated: {fits}; hop costs not measured yet", "unmeasured")
    if share > OVERHEAD_SHARE:
        return PlanChoice(REPLICATED, f"replicated: {fits}; hops were {share:.0%} of each sub-epoch",
                          "overhead_high")
    return PlanChoice(MOP, f"mop: hops were {share:.0%} of each sub-epoch (replication pays above "
                           f"{OVERHEAD_SHARE:.0%}); each worker holds 1/{workers} of {dataset_name}", "overhead_low")
