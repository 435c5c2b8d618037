"""A real Spark standalone cluster on loopback (master + 2 workers from pip's pyspark) for the session.

The SparkSession (driver) is shared by the tests in this session: each test builds its own
``SparkBackend`` on it, whose barrier job starts fresh Python workers on the cluster's executors.
"""

from __future__ import annotations

import os
import sys

import pytest

from hopper.mop_scheduler.backends.spark_cluster import StandaloneCluster

SPARK_WORKERS = 2


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    cluster = StandaloneCluster(n_workers=SPARK_WORKERS, cores=1, memory="2g",
                                workdir=tmp_path_factory.mktemp("spark-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def spark_session(spark_cluster):
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from hopper.mop_scheduler.backends.spark import BARRIER_SLOT_CHECK, REQUIRED_CONF

    builder = (SparkSession.builder.master(spark_cluster.url).appName("hopper-tests")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.executor.cores", "1").config("spark.executor.memory", "1g")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false"))
    for key, value in {**BARRIER_SLOT_CHECK, **REQUIRED_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


@pytest.fixture
def spark_backend(spark_session, settings):
    """A factory for Spark backends on the session's cluster, configured like the scheduler's default."""
    from hopper.mop_scheduler.backends.spark import SparkBackend

    def make(**overrides):
        options = {"spark": spark_session, "driver_host": "127.0.0.1", "heartbeat_timeout": 20.0,
                   "model_cache": settings.worker_model_cache,
                   "allowed_roots": (*map(str, settings.data_roots), str(settings.artifact_dir)), **overrides}
        return SparkBackend(SPARK_WORKERS, **options)

    return make
