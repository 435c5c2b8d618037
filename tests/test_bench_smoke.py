"""Each benchmark runs at toy size so that it never rots (timings are the benchmarks' job, not the tests')."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", ["hop_overhead.py", "api_latency.py", "scheduler_scale.py", "steering.py",
                                    "mop_vs_baselines.py", "edge_profile.py", "mop_spark.py", "privacy.py",
                                    "api_vs_optuna_dashboard.py", "sharing.py",
                                    # 6-7 minutes each even at toy size (a Ray cluster and ~20 processes that import
                                    # TensorFlow): `make bench-smoke` runs them, `make test` deselects them
                                    pytest.param("search_efficiency.py", marks=pytest.mark.peer_bench),
                                    pytest.param("peers.py", marks=pytest.mark.peer_bench)])
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


def _scale(document):
    for rows in document["results"].values():
        assert [r["configs"] for r in rows] == [10, 100] and all(r["decision_ms"] > 0 for r in rows)


def _steering(document):
    unsteered, steered = document["unsteered"], document["steered"]["stop_worst_half"]
    assert unsteered["sub_epochs"] == 4 * 2 * 2  # 4 configs x 2 epochs x 2 partitions
    assert sum(a.startswith("stop") for a in steered["actions"]) == 2
    assert sum(a.startswith("clone") for a in steered["actions"]) == 1


def _baselines(document):
    for suite in document["suites"].values():
        n = len(suite["configs"])
        for method in ("sequential", "task_parallel", "mop"):
            assert len(suite[method]["val_accuracy_per_config"]) == n and suite[method]["makespan_s"] > 0
        assert suite["mop"]["data_footprint_vs_task_parallel"] == pytest.approx(0.5, abs=0.01)


def _edge(document):
    for name in ("mlp", "cnn"):
        row = document["models"][name]
        assert row["int8"]["bytes"] < row["float32"]["bytes"] and row["float32"]["export_seconds"] > 0
        for q in ("float32", "int8"):
            for interpreter in ("ai-edge-litert", "tflite-runtime"):
                assert 0 < row[q][interpreter]["p50_ms"] <= row[q][interpreter]["p95_ms"]


def _spark(document):
    for backend in ("local_before", "spark", "local_after"):
        row = document["results"][backend]
        # 2 configs x 1 epoch x 2 partitions
        assert row["sub_epochs"] == 2 * 2 and row["startup_seconds"] > 0 and row["dispatch_overhead_median_ms"] >= 0
    assert document["ratios_spark_over_local"]["startup"] > 0


def _privacy(document):
    for doc in document["accuracy_vs_epsilon"].values():
        plain, private = doc["runs"][0], doc["runs"][1:]
        assert plain["noise_multiplier"] is None and 0 <= plain["val_accuracy"] <= 1
        # partitioning into 4 costs privacy (stronger amplification at the smaller sampling rate)
        assert all(0 < r["epsilon"] < r["epsilon_if_4_mop_partitions"] and r["steps"] > 0 for r in private)
    for row in document["cost"].values():
        assert row["plain_seconds_median"] > 0 and row["ratio_median"] > 0 and len(row["ratios"]) == row["repeats"]


def _api_vs_optuna(document):
    for shape in ("closed_loop_wrk", "pollers_1_per_s"):
        assert any(k.startswith("optuna-dashboard") for k in document[shape])
        for row in document[shape].values():
            assert all(0 < run["p50_ms"] <= run["p95_ms"] for run in row["runs"])
    changing = document["pollers_1_per_s_while_the_store_changes"]
    assert set(changing["reads"]) == {k for k in document["pollers_1_per_s"] if "/configs (" in k or "/sub-epochs" in k}
    assert "commits in all" in changing["how"] and not changing["how"].startswith("a config's epoch committed every 0.5 s (0 ")
    assert all(set(t) == {"value", "target", "met"} for t in document["targets"].values())


def _sharing(document):
    makespan = document["makespan"]
    assert 0 < makespan["digits_alone_s"] and 0 < makespan["wine_alone_s"] and makespan["shared_s"] > 0
    assert makespan["shared_over_sum_of_ideal"] == pytest.approx(
        makespan["shared_s"] / makespan["one_after_the_other_s"], abs=0.01)
    for name, weights in (("fair_share_1_1", (1.0, 1.0)), ("fair_share_3_1", (3.0, 1.0))):
        shares = document[name]
        assert (shares["digits"]["weight"], shares["wine"]["weight"]) == weights
        # 1 config x 1 epoch x 2 partitions each
        assert shares["digits"]["sub_epochs"] == shares["wine"]["sub_epochs"] == 2
        assert shares["digits"]["share"] + shares["wine"]["share"] == pytest.approx(1.0, abs=0.01)


SEARCH_METHODS = {"hopper_grid", "hopper_random", "hopper_tpe", "hopper_bayesian", "hopper_evolution", "hopper_asha",
                  "hopper_hyperband", "hopper_pbt", "hopper_nsga2", "ray_asha", "ray_pbt", "optuna_tpe_sha",
                  "optuna_tpe_hyperband"}


def _search_efficiency(document):
    assert document["missing_methods"] == [] and set(document["methods"]) == SEARCH_METHODS
    for label, row in document["methods"].items():
        assert 0 < row["best_accuracy"]["mean"] <= 1 and row["compute_s"]["mean"] > 0, label
        assert row["wall_s"]["mean"] > 0 and row["epochs_trained"]["mean"] >= 1, label
        curve = document["curves_seed0"][label]
        assert [r["best"] for r in curve] == sorted(r["best"] for r in curve), label  # best-so-far never drops
        assert curve[-1]["compute"] == pytest.approx(row["compute_s"]["mean"], abs=0.05), label
    # a quick run has 2 grid configs x 2 epochs, every one trained to the end
    assert document["methods"]["hopper_grid"]["epochs_trained"]["mean"] == 4
    for name in ("asha_accuracy_vs_grid", "asha_compute_share_of_grid", "asha_time_to_accuracy_vs_ray_asha",
                 "asha_time_to_accuracy_vs_optuna_tpe_sha", "pbt_accuracy_vs_grid", "nsga2_hypervolume_minus_random"):
        target = document["targets"][name]
        assert isinstance(target["met"], bool) and "value" in target and "target" in target, name


def _peers(document):
    suite = document["suites"]["tabular_mlp"]
    assert set(suite["methods"]) == {"hopper", "task_parallel", "ray", "optuna", "kerastuner_distributed"}
    for name, row in suite["methods"].items():
        run = row["repeats"][0]
        assert run["configs_finished"] == 2 and run["epochs_trained"] == 2, name  # 2 configs x 1 epoch
        assert 0 < run["makespan_s"] < run["end_to_end_s"] and run["peak_rss_tree_mb"] >= run["peak_rss_process_mb"] > 0
    for peer in ("task_parallel", "ray", "optuna", "kerastuner_distributed"):
        # MOP holds half the training data per worker; every peer holds all of it
        assert suite["ratios"][f"hopper_over_{peer}"]["train_bytes_per_worker"] == pytest.approx(0.5, abs=0.01)
    assert {t["met"] for t in document["targets"].values()} <= {True, False} and len(document["targets"]) == 4


CHECKS = {"hop_overhead.py": _hop, "api_vs_optuna_dashboard.py": _api_vs_optuna, "api_latency.py": _api, "scheduler_scale.py": _scale,
          "steering.py": _steering, "mop_vs_baselines.py": _baselines, "edge_profile.py": _edge,
          "mop_spark.py": _spark, "privacy.py": _privacy, "search_efficiency.py": _search_efficiency,
          "peers.py": _peers, "sharing.py": _sharing}
