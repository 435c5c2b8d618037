"""Measure KerasTuner's own seed-to-seed spread for every config of the corpus and write ``noise.json``.

``python -m tests.compat.measure_noise [--seeds 5] [CASE ...]`` trains each config with the reference harness
under seeds 0..N-1 (different initial weights, shuffling and dropout masks) and records the objective of
each run; the test's tolerance (``test_corpus.tolerance``) is derived from their spread. Re-run it when a
script, its data or its configs change (a few minutes on two cores); it merges into the existing file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.compat.data import generate
from tests.compat.manifest import BY_NAME, CASES
from tests.compat.reference import train_reference

NOISE_FILE = Path(__file__).parent / "noise.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=NOISE_FILE, help="where to merge the measurements")
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="compat-noise-"))
    datasets: dict = {}
    for case in [BY_NAME[n] for n in args.cases] or CASES:
        if case.dataset not in datasets:
            datasets[case.dataset] = generate(case.dataset, root)
        started = time.monotonic()
        measured = {str(i): [round(train_reference(case, config, datasets[case.dataset], seed=seed,
                                                           directory=root), 5)
                                     for seed in range(args.seeds)]
                            for i, config in enumerate(case.configs)}
        print(f"{case.name}: {measured} ({time.monotonic() - started:.0f} s)", flush=True)
        noise = json.loads(args.out.read_text()) if args.out.exists() else {}
        noise[case.name] = measured
        args.out.write_text(json.dumps(noise, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
