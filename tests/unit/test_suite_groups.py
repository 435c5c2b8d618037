"""``make test``'s parallel phase keeps a file's tests on one worker (tests/conftest.py): its module fixtures start
once. pytest 9.2 silently broke pytest-xdist's own xdist_group marks, so this runs the real scheduler."""

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.conftest import xdist_group_of

ROOT = Path(__file__).resolve().parents[2]


def test_group_names():
    assert xdist_group_of("tests/unit/test_policy.py::test_a[x-1]") == "unit/test_policy.py"
    assert xdist_group_of("tests/spark/test_spark_mop.py::test_a") == xdist_group_of("tests/spark/x.py::b") == "spark"
    assert xdist_group_of("tests/e2e/test_browser.py::t") == xdist_group_of("tests/edge/test_agents.py::t") == "edge"
    assert xdist_group_of("tests/test_bench_smoke.py::test_benchmark_runs_and_prints_json[steering.py]") == \
        "bench:steering.py"


def test_each_file_runs_on_one_worker():
    files = ["tests/unit/test_cron.py", "tests/unit/test_shards.py"]  # quick ones: this measures placement, not tests
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", *files], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workers = defaultdict(set)
    for worker, path in re.findall(r"^\[(gw\d)\] .*?PASSED (tests/\S+?)::", proc.stdout, re.MULTILINE):
        workers[path].add(worker)
    assert set(workers) == set(files), proc.stdout[-3000:]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), dict(workers)
