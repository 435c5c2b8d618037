"""Each benchmark runs at toy size so that it never rots (timings are the benchmarks' job, not the tests')."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", ["hop_overhead.py"])
def test_benchmark_runs_and_prints_json(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert document["benchmark"] == script.removesuffix(".py")
    for row in document["results"]:
        assert row["sub_epoch_seconds_median"] > 0 and row["hop_seconds_median"] > 0
