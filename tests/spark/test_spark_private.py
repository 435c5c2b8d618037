"""DP-SGD on the Spark backend: the same runner, so the same DP blocks and the same epsilon per epoch."""

import math

import pytest

from hopper.engine import privacy
from hopper.engine.data import read_partition
from tests.support.running import RunningScheduler

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DELTA, BATCH, SIGMA = 1e-5, 64, 1.0


def test_a_private_workload_on_spark_reports_epsilon_from_its_dp_blocks(services, digits, spark_backend):
    workload = services.launch_workload({
        "name": "private-spark", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": 2,
        "space": {"lr": {"type": "choice", "values": [0.01, 0.03]}, "units": {"type": "fixed", "value": 32},
                  "batch_size": {"type": "fixed", "value": BATCH}},
        "privacy": {"noise_multiplier": SIGMA, "delta": DELTA}})
    with RunningScheduler(services, backend=spark_backend()) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 300, "the private Spark grid")
    layout = services.store.datasets.layout(digits.id)
    rows = {p: len(read_partition(path, layout.feature_shape)[1]) for p, path in enumerate(layout.partition_paths)}
    configs = services.list_configs(workload.id)
    assert len(configs) == 2 and all(c.status == "done" for c in configs)
    for config in configs:
        log = [s for s in services.list_sub_epochs(workload.id) if s.config_id == config.id and s.outcome == "ok"]
        assert {s.worker.split("@")[0] for s in log} == {"spark-0", "spark-1"}
        eps = [m["value"] for m in sorted(services.get_config(config.id).metrics, key=lambda m: m["epoch"])
               if m["name"] == "epsilon"]
        expected = [max(privacy.epsilon(BATCH / n, SIGMA, (e + 1) * math.ceil(n / BATCH), DELTA)
                        for n in rows.values()) for e in range(2)]
        assert eps == [pytest.approx(x, rel=1e-9) for x in expected] and eps[0] < eps[1]
