"""Before/after: run one benchmark script from two checkouts, interleaved, and report median ratios.

This machine drifts 10-20 % between minutes, so the two versions run alternately (A B A B ...) and every
numeric field of the benchmarks' JSON is reported as the median of the per-pair ratios candidate / baseline,
with its spread. Each checkout runs with its own ``.venv`` (or this interpreter when it has none).

Usage: python bench/ab.py --baseline ../old-checkout --candidate . --repeats 3 scheduler_scale.py -- --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402


def _python(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run(checkout: Path, script: str, args: list[str]) -> dict:
    """One run; the benchmark's JSON document (the last top-level object it printed)."""
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run([_python(checkout), str(checkout / "bench" / script), *args], cwd=checkout,
                              capture_output=True, text=True, timeout=3600,
                              env={**os.environ, "HOPPER_HOME": home})
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}/bench/{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    text = proc.stdout
    start = text.rfind("\n{\n") + 1 if "\n{\n" in text else text.find("{")
    return json.loads(text[start:])


def _numbers(doc: object, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf, keyed by its path (lists by index)."""
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("machine", "benchmark"):
                continue
            out.update(_numbers(value, f"{prefix}{key}."))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.update(_numbers(value, f"{prefix}{i}."))
    elif isinstance(doc, int | float) and not isinstance(doc, bool):
        out[prefix.rstrip(".")] = float(doc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("script")
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    pairs = []
    for i in range(opts.repeats):
        order = [opts.baseline, opts.candidate] if i % 2 == 0 else [opts.candidate, opts.baseline]
        runs = {str(c): _numbers(_run(c.resolve(), opts.script, opts.args)) for c in order}
        pairs.append((runs[str(opts.baseline)], runs[str(opts.candidate)]))
        print(f"pair {i + 1}/{opts.repeats} done", file=sys.stderr)
    ratios = {}
    for key in pairs[0][0]:
        values = [(b[key], c[key]) for b, c in pairs if key in b and key in c and b[key] != 0]
        if len(values) == len(pairs):
            per_pair = [c / b for b, c in values]
            ratios[key] = {"baseline_median": statistics.median(b for b, _ in values),
                           "candidate_median": statistics.median(c for _, c in values),
                           "ratio_median": round(statistics.median(per_pair), 3),
                           "ratio_min": round(min(per_pair), 3), "ratio_max": round(max(per_pair), 3)}
    emit(f"ab_{Path(opts.script).stem}", {"baseline": str(opts.baseline), "candidate": str(opts.candidate),
                                          "repeats": opts.repeats, "args": opts.args, "ratios": ratios})


if __name__ == "__main__":
    main()
