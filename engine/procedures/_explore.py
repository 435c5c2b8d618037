"""Changing one config into a neighbour: PBT's explore step and evolution's mutation, seeded by a key."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from hopper.engine.space import Choice, Fixed, Range, SearchSpace


def key_rng(*parts: object) -> random.Random:
    """A random stream named by its parts (seed, config, epoch): a rebuilt procedure draws the same numbers."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _fresh(space: SearchSpace, rng: random.Random) -> dict:
    return space.sample(rng.randrange(2**31), rng.randrange(2**31))


def complete(space: SearchSpace, hparams: dict, rng: random.Random) -> dict:
    """``hparams`` with exactly the space's active parameters: ones a changed choice activates are drawn fresh,
    ones it deactivated are dropped (keys outside the space, e.g. a privacy noise, are kept)."""
    fresh = _fresh(space, rng)
    out = dict(hparams)
    for _ in range(8):  # nested choices settle within their depth
        active = space.active_params(out)
        missing = [n for n in active if n not in out]
        if not missing:
            break
        for name in missing:
            out[name] = fresh.get(name, _fresh(space, rng).get(name))
    known = set(space.names())
    active = space.active_params(out)
    return {k: v for k, v in out.items() if k in active or k not in known}


def snap(p: Range, value: float) -> int | float:
    value = min(max(value, p.low), p.high)
    if p.step is not None:
        value = p.low + round((value - p.low) / p.step) * p.step
        value = min(max(value, p.low), p.high)
    return int(round(value)) if p.is_int else float(value)


def perturb(space: SearchSpace, hparams: dict, rng: random.Random, *, resample_probability: float,
            factors: tuple[float, float] = (0.8, 1.2)) -> tuple[dict, list[str]]:
    """PBT's explore: each searchable parameter is resampled with ``resample_probability``, else numeric ones are
    multiplied by one of ``factors`` (clipped to the space, snapped to its step) and numeric choices move to
    the neighbouring value. Returns the new hparams and what changed, as people read it ("lr ×0.8")."""
    out = dict(hparams)
    changes: list[str] = []
    fresh = _fresh(space, rng)
    for name, p in space.active_params(hparams).items():
        if isinstance(p, Fixed) or name not in hparams:
            continue
        old = hparams[name]
        if rng.random() < resample_probability and name in fresh:
            out[name] = fresh[name]
            changes.append(f"{name} resampled {old!r}→{out[name]!r}")
            continue
        factor = rng.choice(factors)
        if isinstance(p, Range):
            out[name] = snap(p, float(old) * factor)
        elif isinstance(p, Choice) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p.values):
            ordered = sorted(p.values)
            idx = ordered.index(old) if old in ordered else 0
            idx = max(0, min(len(ordered) - 1, idx + (1 if factor > 1 else -1)))
            out[name] = ordered[idx]
        else:
            continue  # a categorical value has no neighbour: only resampling changes it
        if out[name] != old:
            changes.append(f"{name} ×{factor:g} {old!r}→{out[name]!r}")
    return complete(space, out, rng), changes


def mutate(space: SearchSpace, hparams: dict, rng: random.Random) -> tuple[dict, str]:
    """Regularised evolution's mutation: one searchable parameter gets a different value."""
    names = [n for n, p in space.active_params(hparams).items() if not isinstance(p, Fixed)]
    if not names:
        return dict(hparams), "nothing to mutate"
    name = rng.choice(sorted(names))
    old: Any = hparams.get(name)
    out = dict(hparams)
    for _ in range(16):
        candidate = _fresh(space, rng).get(name, old)
        if candidate != old:
            out[name] = candidate
            break
    return complete(space, out, rng), f"{name} {old!r}→{out.get(name)!r}"
