"""Measure KerasTuner's own seed-to-seed spread for every config of the corpus and write ``noise.json``.

``python -m tests.compat.measure_noise [--seeds 5] [CASE ...]`` trains each config with the reference harness
under seeds 0..N-1 (different initial weights, shuffling and dropout masks) and records the objective of
each run; the test compares Hopper with their mean and derives its tolerance (``test_corpus.tolerance``)
from their spread. Each measurement is stored with the case's fingerprint (``manifest.fingerprint``): when a
script, its data, its configs or the reference harness change, the corpus test names the stale cases and
this command re-measures them (a few minutes on two cores); it merges into the existing file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.compat.data import generate
from tests.compat.manifest import BY_NAME, CASES, fingerprint
from tests.compat.reference import train_reference

NOISE_FILE = Path(__file__).parent / "noise.json"
#: The key of noise.json that maps each case to the fingerprint its measurements were taken at.
FINGERPRINTS = "__fingerprints__"


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
        noise.setdefault(FINGERPRINTS, {})[case.name] = fingerprint(case)
        args.out.write_text(json.dumps(noise, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
