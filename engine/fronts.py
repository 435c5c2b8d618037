"""Pareto sets and hypervolumes of a workload's objectives (pure: lists of numbers in, numbers out).

Every objective is turned into a loss (lower is better) by its declared direction; the hypervolume is the
volume those losses dominate up to a reference point (exact: 2-D by a sweep, more dimensions by slicing).
"""

from __future__ import annotations

from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` in every loss and better in one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_indices(losses: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points (ties all kept), in input order."""
    return [i for i, a in enumerate(losses) if not any(dominates(b, a) for j, b in enumerate(losses) if j != i)]


def hypervolume(losses: Sequence[Point], reference: Point) -> float:
    """The volume dominated by ``losses`` and bounded by ``reference`` (points beyond it count for nothing)."""
    inside = [tuple(p) for p in losses if all(x < r for x, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    front = [inside[i] for i in pareto_indices(inside)]
    return _slice_volume(sorted(set(front)), tuple(reference))


def _slice_volume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    if len(reference) == 2:
        volume, best_y = 0.0, reference[1]
        for x, y in sorted(points):
            if y < best_y:
                volume += (reference[0] - x) * (best_y - y)
                best_y = y
        return volume
    # Slice along the last axis: between consecutive values, the points at or below the slice dominate a
    # (d-1)-dimensional volume.
    levels = sorted({p[-1] for p in points}) + [reference[-1]]
    volume = 0.0
    for low, high in zip(levels, levels[1:], strict=False):
        active = [p[:-1] for p in points if p[-1] <= low]
        front = [active[i] for i in pareto_indices(active)]
        volume += (high - low) * _slice_volume(sorted(set(front)), reference[:-1])
    return volume


def reference_point(losses: Sequence[Point], margin: float = 0.1) -> tuple[float, ...]:
    """The worst loss of each objective plus ``margin`` of its range (one fixed point for every epoch, so the
    hypervolumes of successive epochs compare)."""
    out = []
    for column in zip(*losses, strict=True):
        worst, best = max(column), min(column)
        out.append(worst + margin * ((worst - best) or abs(worst) or 1.0))
    return tuple(out)
