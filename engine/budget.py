"""Workload budgets: what counts as spent, and the ETA people see (pure: the scheduler and the services share it).

A budget (the spec's ``budget`` section, stored with the price per worker-hour in force at launch) limits wall
time since launch, worker-seconds (committed sub-epochs plus running ones so far) and money (worker-seconds /
3600 x price). The scheduler checks it at every step, before it dispatches: once one limit is reached the
workload gets no new sub-epoch and is ``budget_spent``, so it overshoots by at most the sub-epochs in flight.
"""

from __future__ import annotations

from datetime import UTC, datetime

LIMITS = ("wall_seconds", "worker_seconds", "money")


def utc_now() -> datetime:
    """Now, as the store's naive-UTC timestamps (``created_at``) have it."""
    return datetime.now(UTC).replace(tzinfo=None)


def money_spent(budget: dict, worker_seconds: float) -> float | None:
    """What the worker time cost at the price stored with the budget; None without a price."""
    price = budget.get("price_per_worker_hour")
    return None if not price else worker_seconds / 3600.0 * float(price)


def budget_exceeded(budget: dict, *, wall_seconds: float, worker_seconds: float) -> str | None:
    """Why the budget is spent (the first limit reached, with the numbers), or None while it is not."""
    spent = {"wall_seconds": wall_seconds, "worker_seconds": worker_seconds,
             "money": money_spent(budget, worker_seconds)}
    for name in LIMITS:
        limit = budget.get(name)
        if limit is not None and spent[name] is not None and spent[name] >= float(limit):
            return f"budget spent: {name} {spent[name]:.4g} reached its limit {float(limit):g}"
    return None


def remaining(budget: dict, *, wall_seconds: float, worker_seconds: float) -> dict[str, float | None]:
    """What is left of each limit (never below 0); None where the budget sets no limit."""
    spent = {"wall_seconds": wall_seconds, "worker_seconds": worker_seconds,
             "money": money_spent(budget, worker_seconds)}
    return {name: (None if budget.get(name) is None or spent[name] is None
                   else max(0.0, float(budget[name]) - spent[name])) for name in LIMITS}


def worker_share(weight: float, weights_running: list[float], workers: int) -> float:
    """How many workers a workload gets at its weight against the running workloads' (itself included)."""
    total = sum(weights_running) or weight
    return max(min(float(workers), workers * weight / total), 1e-9)


def eta_seconds(mean_sub_epoch: float | None, sub_epochs_left: int, share: float) -> float | None:
    """Measured mean sub-epoch time x sub-epochs left / the workers its share gives it; None before any
    sub-epoch was measured."""
    if mean_sub_epoch is None:
        return None
    return mean_sub_epoch * sub_epochs_left / share
