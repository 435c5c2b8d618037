"""Grid, random and manual procedures: the templates the others follow."""

from __future__ import annotations

from hopper.engine.procedures._base import Procedure


class RandomProcedure(Procedure):
    """Seeded random search; the k-th suggestion is reproducible (one stream per parameter)."""

    name = "random"
    needs_budget = True

    def _propose(self, n: int) -> list[dict]:
        start = self.n_proposed
        return [self.space.sample(self.seed, start + i) for i in range(n)]

    def remaining_budget(self) -> int | None:
        if self.budget is None:
            return 0  # random search without a budget would never end; demand one
        return super().remaining_budget()


class GridProcedure(Procedure):
    """Every point of the grid, in order; the budget (if any) cuts the grid short."""

    name = "grid"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._grid = self.space.grid()

    def capacity(self) -> int:
        return len(self._grid)

    def _propose(self, n: int) -> list[dict]:
        start = self.n_proposed
        return [dict(p) for p in self._grid[start:start + n]]


class ManualProcedure(Procedure):
    """Proposes nothing: the workload trains only what people add."""

    name = "manual"

    def capacity(self) -> int:
        return 0

    def _propose(self, n: int) -> list[dict]:
        return []
