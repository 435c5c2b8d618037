"""Each benchmark runs at toy size so that it never rots (timings are the benchmarks' job, not the tests')."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", ["hop_overhead.py", "api_latency.py"])
def test_benchmark_runs_and_prints_json(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert document["benchmark"] == script.removesuffix(".py")
    CHECKS[script](document)


def _hop(document):
    for row in document["results"]:
        assert row["sub_epoch_seconds_median"] > 0 and row["hop_seconds_median"] > 0


def _api(document):
    for row in document["endpoints"].values():
        assert row["requests"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"]


CHECKS = {"hop_overhead.py": _hop, "api_latency.py": _api}
