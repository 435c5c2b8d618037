"""Privacy accounting for DP-SGD under model hopper parallelism (pure Python + dp-accounting, no TensorFlow).

The scheduler imports this module to compute a config's epsilon after each epoch and to decide whether the
next epoch would overspend a target; the worker side (``hopper.mop_scheduler.worker.dp_sgd``) imports it for
the sampling rate and step count, so both sides count the same way.

What one private sub-epoch does
-------------------------------
A config trains on one partition of ``n_p`` rows with hyperparameter ``batch_size = b``. The sub-epoch takes
``T_p = ceil(n_p / b)`` steps (:func:`steps_per_sub_epoch`); in every step each row of the partition joins the
batch independently with probability ``q_p = b / n_p`` (:func:`sampling_rate`): Poisson subsampling. Each
example's gradient is clipped to L2 norm C, the clipped gradients are summed, N(0, sigma^2 C^2) noise is
added and the sum is divided by the expected batch size ``b``. One step is therefore exactly dp-accounting's
``PoissonSampledDpEvent(q_p, GaussianDpEvent(sigma))`` and a sub-epoch is that event self-composed ``T_p``
times: the mechanism and the accountant's model of it are the same, so the epsilon is not an approximation
of what ran (the batch sizes vary from step to step, which is what Poisson subsampling means).

Why per-partition accounting gives the whole-dataset epsilon
------------------------------------------------------------
Take two neighbouring datasets that differ in one example x (add/remove relation). Under MOP the partitioning
is fixed once and x lives in exactly one partition p. Partition sizes, q_p and T_p are treated as public
(as DP-SGD everywhere treats N as public). Every step that samples from another partition p' != p reads the
same rows under both datasets, so its output distribution is identical and its privacy loss for x is zero;
by adaptive composition those steps cost x nothing, whatever model state they start from (the model state
is only post-processing of earlier private outputs). The steps that can see x are the ``T_p`` steps of each
visit to p, each a Poisson-subsampled Gaussian with rate q_p. After E epochs x has been exposed to exactly
``E * T_p`` such steps, so the config's guarantee is

    epsilon = max over partitions p of epsilon(q_p, sigma, E * T_p, delta)

which with equal partitions (Hopper's partitions differ by at most one row) is the epsilon of any one of
them (:func:`epsilon_for_epochs`). A visit is counted when it starts: a sub-epoch that fails and is re-run
has released nothing if its checkpoint is discarded, but counting it is the conservative choice for a run
whose output was observed (its loss was logged).

The price of partitioning
-------------------------
Per epoch an example sees ``T_p ~= n_p / b`` steps at rate ``b / n_p``, where a single-machine DP-SGD run over
all N rows sees ``N / b`` steps at rate ``b / N``. Both have ``q * T ~= 1`` per epoch, but amplification by
subsampling is stronger at small q (epsilon grows roughly like ``q * sqrt(T)``), so with W equal partitions the
same (b, sigma, epochs) costs roughly ``sqrt(W)`` times the single-machine epsilon at small epsilon. Keep the
batch size small relative to the partition, or raise sigma (``target_epsilon`` does this for you).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ACCOUNTANTS = ("rdp", "pld")

#: Upper end of the noise search; sigma beyond this trains nothing useful and signals an impossible target.
_MAX_SIGMA = 1e4


def sampling_rate(batch_size: int, partition_rows: int) -> float:
    """Poisson inclusion probability ``q = batch_size / partition_rows`` (1 when the batch exceeds the data)."""
    if partition_rows < 1:
        raise ValueError(f"partition_rows must be >= 1, got {partition_rows}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return min(1.0, batch_size / partition_rows)


def steps_per_sub_epoch(partition_rows: int, batch_size: int) -> int:
    """Number of DP-SGD steps one visit to a partition takes: ``ceil(partition_rows / batch_size)``."""
    if partition_rows < 1 or batch_size < 1:
        raise ValueError(f"partition_rows and batch_size must be >= 1, got {partition_rows}, {batch_size}")
    return math.ceil(partition_rows / batch_size)


def _accountant(name: str):  # noqa: ANN202
    import dp_accounting

    if name == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if name == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {name!r}")


def _check(q: float, noise_multiplier: float, steps: int, delta: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"sampling rate q must be in [0, 1], got {q}")
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")


def epsilon_of_events(events: Iterable[tuple[float, float, int]], delta: float, accountant: str = "rdp") -> float:
    """Epsilon of a sequence of ``(q, noise_multiplier, steps)`` Poisson-subsampled Gaussian blocks.

    Why a sequence: a clone or a PBT exploit may change sigma or the batch size mid-run; composing the blocks
    in order keeps the account exact. ``inf`` when any block has sigma = 0 (non-private) with q > 0.
    """
    import dp_accounting

    acc = _accountant(accountant)
    any_steps = False
    for q, sigma, steps in events:
        _check(q, sigma, steps, delta)
        if steps == 0 or q == 0.0:
            continue
        if sigma == 0.0:
            return math.inf
        any_steps = True
        acc.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), int(steps)))
    if not any_steps:
        return 0.0
    return float(acc.get_epsilon(delta))


def epsilon(q: float, noise_multiplier: float, steps: int, delta: float, accountant: str = "rdp") -> float:
    """(epsilon, delta)-DP epsilon after ``steps`` Poisson-subsampled Gaussian steps at rate ``q``."""
    return epsilon_of_events([(q, noise_multiplier, steps)], delta, accountant)


@functools.lru_cache(maxsize=256)  # pure in its arguments; the search costs 0.5 s (RDP) to 20 s (PLD)
def noise_for_target_epsilon(target_epsilon: float, q: float, steps: int, delta: float,
                             accountant: str = "rdp", rtol: float = 0.005) -> float:
    """A sigma whose epsilon is at most ``target_epsilon`` and within ``rtol`` below it (the least noise
    that meets the target, to that tolerance).

    Epsilon falls monotonically as sigma grows, so a bracket [lo, hi] with eps(lo) > target >= eps(hi) is
    narrowed by regula falsi on log(epsilon) (Illinois variant, bisection as the fallback) until eps(hi) lies
    in ``[target * (1 - rtol), target]``: a handful of accountant calls, which matters for PLD (~1 s each).
    The default rtol leaves margin inside the 1% the scheduler promises. For PLD the bracket starts from
    the RDP answer, a valid upper bound that is cheap to find. Raises ``ValueError`` when even sigma = 1e4
    does not reach the target.
    """
    if target_epsilon <= 0:
        raise ValueError(f"target_epsilon must be > 0, got {target_epsilon}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol}")
    _check(q, 1.0, steps, delta)
    if steps == 0 or q == 0.0:
        return 0.0

    def eps(sigma: float) -> float:
        return epsilon(q, sigma, steps, delta, accountant) if sigma > 0 else math.inf

    def ok(value: float) -> bool:
        return target_epsilon * (1 - rtol) <= value <= target_epsilon

    if accountant != "rdp":
        hi = noise_for_target_epsilon(target_epsilon, q, steps, delta, "rdp", rtol)
        lo = hi / 2
    else:
        lo, hi = 0.0, 1.0
    eps_hi = eps(hi)
    while eps_hi > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > _MAX_SIGMA:
            raise ValueError(f"target_epsilon={target_epsilon} is out of reach for q={q:.4g}, steps={steps}, "
                             f"delta={delta:g} even with noise_multiplier {_MAX_SIGMA:g}; raise the target, "
                             "lower the batch size or train fewer epochs")
        eps_hi = eps(hi)
    eps_lo = eps(lo)
    while eps_lo <= target_epsilon:  # the PLD start may sit entirely below the target
        if ok(eps_lo):
            return lo
        lo, hi, eps_hi = lo / 2, lo, eps_lo
        eps_lo = eps(lo)
    goal = math.log(target_epsilon * (1 - rtol / 2))
    f_lo = math.log(eps_lo) - goal if math.isfinite(eps_lo) else math.inf
    f_hi = math.log(eps_hi) - goal
    last = 0  # which end moved last: +1 lo, -1 hi (Illinois halves the stale end's value)
    for _ in range(200):
        if ok(eps_hi):
            return hi
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo) if math.isfinite(f_lo) else (lo + hi) / 2
        if not lo < mid < hi:
            mid = (lo + hi) / 2
        eps_mid = eps(mid)
        f_mid = math.log(eps_mid) - goal
        if eps_mid > target_epsilon:
            lo, eps_lo, f_lo = mid, eps_mid, f_mid
            if last == 1:
                f_hi /= 2
            last = 1
        else:
            hi, eps_hi, f_hi = mid, eps_mid, f_mid
            if last == -1 and math.isfinite(f_lo):
                f_lo /= 2
            last = -1
    return hi


def epsilon_for_epochs(epochs: int, *, batch_size: int, partition_rows: int, noise_multiplier: float,
                       delta: float, accountant: str = "rdp") -> float:
    """A config's epsilon after ``epochs`` full MOP epochs (one visit to its partition per epoch).

    Pass the largest partition's row count when partitions differ: it has the largest q * sqrt(T), a
    conservative and (for Hopper's equal partitions) exact choice.
    """
    q = sampling_rate(batch_size, partition_rows)
    return epsilon(q, noise_multiplier, epochs * steps_per_sub_epoch(partition_rows, batch_size), delta, accountant)


def epsilon_for_visits(visits: Mapping[int, Iterable[tuple[int, int, float]]], delta: float,
                       accountant: str = "rdp") -> float:
    """A config's epsilon from its visit log: ``{partition: [(partition_rows, batch_size, sigma), ...]}``.

    One entry per sub-epoch that ran (inherited ones from a warm-start parent included). The guarantee is the
    worst partition's composition, as the module docstring argues.
    """
    worst = 0.0
    for runs in visits.values():
        events = [(sampling_rate(b, n), float(sigma), steps_per_sub_epoch(n, b)) for n, b, sigma in runs]
        worst = max(worst, epsilon_of_events(events, delta, accountant))
    return worst


@dataclass(frozen=True)
class PrivacyPlan:
    """The resolved noise for one config: what the worker trains with and what the scheduler reports."""

    noise_multiplier: float
    l2_norm_clip: float
    microbatches: int | None
    delta: float
    target_epsilon: float | None
    q: float
    steps_per_epoch: int
    accountant: str = "rdp"

    def epsilon_after(self, epochs: int) -> float:
        """Epsilon after ``epochs`` epochs at this plan's rate and noise (the per-epoch metric)."""
        return epsilon(self.q, self.noise_multiplier, epochs * self.steps_per_epoch, self.delta, self.accountant)

    def next_epoch_exceeds_target(self, epochs_done: int) -> bool:
        """The stop rule: True when one more epoch would take epsilon past ``target_epsilon``."""
        if self.target_epsilon is None:
            return False
        return self.epsilon_after(epochs_done + 1) > self.target_epsilon


def plan(privacy: Mapping[str, object], hparams: Mapping[str, object], *, partition_rows: int,
         max_epochs: int | None) -> PrivacyPlan:
    """Resolve a workload's ``privacy`` options plus a config's hparams into a :class:`PrivacyPlan`.

    ``noise_multiplier``, ``l2_norm_clip`` and ``microbatches`` in ``hparams`` override the workload's options
    (the search may tune them like ``lr``). With ``target_epsilon`` the noise is calibrated so that
    ``max_epochs`` epochs spend at most the target. ``privacy`` is ``PrivacySpec.model_dump()`` (or the same
    keys as a plain mapping).
    """
    accountant = str(privacy.get("accountant") or "rdp")
    merged = {**privacy, **{k: hparams[k] for k in ("noise_multiplier", "l2_norm_clip", "microbatches")
                            if hparams.get(k) is not None}}
    batch_size = int(hparams.get("batch_size", 32))  # type: ignore[arg-type]
    delta = float(merged["delta"])  # type: ignore[arg-type]
    q = sampling_rate(batch_size, partition_rows)
    steps = steps_per_sub_epoch(partition_rows, batch_size)
    target = merged.get("target_epsilon")
    if "noise_multiplier" in hparams and hparams["noise_multiplier"] is not None:
        target_value = float(target) if target is not None else None  # type: ignore[arg-type]
        sigma = float(hparams["noise_multiplier"])  # type: ignore[arg-type]
    elif merged.get("noise_multiplier") is not None:
        target_value, sigma = None, float(merged["noise_multiplier"])  # type: ignore[arg-type]
    else:
        if target is None:
            raise ValueError("privacy needs noise_multiplier or target_epsilon (in the workload or the hparams)")
        if not max_epochs:
            raise ValueError("a privacy target_epsilon needs max_epochs to spread the budget over")
        target_value = float(target)  # type: ignore[arg-type]
        sigma = noise_for_target_epsilon(target_value, q, max_epochs * steps, delta, accountant)
    micro = merged.get("microbatches")
    return PrivacyPlan(noise_multiplier=sigma, l2_norm_clip=float(merged.get("l2_norm_clip", 1.0)),  # type: ignore[arg-type]
                       microbatches=None if micro is None else int(micro),  # type: ignore[arg-type]
                       delta=delta, target_epsilon=target_value, q=q, steps_per_epoch=steps, accountant=accountant)


# -- what the platform calls ----------------------------------------------------------------------------------

#: The hparams a config may set to override the workload's privacy options (tunable like ``lr``).
PRIVACY_HPARAMS = ("noise_multiplier", "l2_norm_clip", "microbatches")

Event = tuple[float, float, int]


def partition_sizes(n_train: int, n_partitions: int) -> tuple[int, ...]:
    """The distinct row counts of a dataset's partitions (``np.array_split``: they differ by at most one)."""
    if n_partitions < 1 or n_train < n_partitions:
        raise ValueError(f"{n_train} training rows cannot fill {n_partitions} partitions")
    low = n_train // n_partitions
    return (low,) if n_train % n_partitions == 0 else (low, low + 1)


def resolve_noise(privacy_options: Mapping[str, object] | None, hparams: Mapping[str, object], *,
                  partition_rows: Iterable[int], max_epochs: int) -> dict:
    """A config's hparams with ``noise_multiplier`` filled in, so that no worker ever searches for sigma.

    Only a workload with ``target_epsilon`` and a config that does not set its own noise needs this. Why the
    largest sigma over the partition sizes: neither the smallest partition (larger q) nor the largest (more
    steps) is the worst case in general, and the config must meet the target on every partition.
    """
    out = dict(hparams)
    if not privacy_options or privacy_options.get("target_epsilon") is None or out.get("noise_multiplier") is not None:
        return out
    out["noise_multiplier"] = max(plan(privacy_options, out, partition_rows=n, max_epochs=max_epochs).noise_multiplier
                                  for n in partition_rows)
    return out


def merge_events(events: Iterable[Event]) -> Event | None:
    """One sub-epoch's DP events as one ``(q, sigma, steps)`` block (None when it took no private step).

    Why one block: a sub-epoch trains one partition with one batch size and one sigma, so every fit call in
    it has the same (q, sigma) and the blocks compose into one with the summed steps. A script that changes
    either inside a sub-epoch is refused rather than mis-accounted.
    """
    merged: Event | None = None
    for q, sigma, steps in events:
        if merged is None:
            merged = (float(q), float(sigma), int(steps))
        elif (merged[0], merged[1]) != (float(q), float(sigma)):
            raise ValueError(f"one sub-epoch trained with two sampling rates or noise multipliers "
                             f"({merged[0]:.4g}, {merged[1]:.4g}) and ({q:.4g}, {sigma:.4g}); train with one "
                             "batch_size and one noise_multiplier per sub-epoch")
        else:
            merged = (merged[0], merged[1], merged[2] + int(steps))
    return merged


@dataclass(frozen=True)
class Account:
    """A config's privacy spend at an epoch end: what is reported and whether the stop rule fires."""

    epsilon: float
    next_epoch_epsilon: float
    target_epsilon: float | None

    @property
    def budget_spent(self) -> bool:
        """True when one more epoch (like the last one) would take epsilon past the target."""
        return self.target_epsilon is not None and self.next_epoch_epsilon > self.target_epsilon


def account(events_by_partition: Mapping[int, list[Event]], privacy_options: Mapping[str, object]) -> Account:
    """Epsilon of every committed sub-epoch of a config (its warm-start lineage included), per the module
    docstring: the worst partition's composition. The next epoch is assumed to repeat each partition's last
    block, which is exact while a config's batch size and sigma do not change."""
    delta = float(privacy_options["delta"])  # type: ignore[arg-type]
    accountant = str(privacy_options.get("accountant") or "rdp")
    now = upcoming = 0.0
    for events in events_by_partition.values():
        if not events:
            continue
        now = max(now, epsilon_of_events(events, delta, accountant))
        upcoming = max(upcoming, epsilon_of_events([*events, events[-1]], delta, accountant))
    target = privacy_options.get("target_epsilon")
    return Account(now, upcoming, None if target is None else float(target))  # type: ignore[arg-type]


def next_epoch_epsilon(events_by_partition: Mapping[int, list[Event]], privacy_options: Mapping[str, object],
                       hparams: Mapping[str, object], *, max_epochs: int) -> float:
    """Epsilon after one epoch of a config with ``hparams`` on top of ``events_by_partition`` (what a clone
    starts from). Which partition has which size is not known here, so every size is tried: the worst wins."""
    delta = float(privacy_options["delta"])  # type: ignore[arg-type]
    accountant = str(privacy_options.get("accountant") or "rdp")
    sizes = [int(n) for n in privacy_options.get("partition_rows") or []]  # type: ignore[union-attr]
    partitions = list(events_by_partition) or [0]
    worst = 0.0
    for n in sizes:
        step = plan(privacy_options, hparams, partition_rows=n, max_epochs=max_epochs)
        block = (step.q, step.noise_multiplier, step.steps_per_epoch)
        for p in partitions:
            worst = max(worst, epsilon_of_events([*events_by_partition.get(p, []), block], delta, accountant))
    return worst
