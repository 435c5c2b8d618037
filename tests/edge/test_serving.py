"""Model serving: deploy the best config over REST (its own process), predict over HTTP, compare with Keras."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from hopper.edge_deploy.launch import child_env
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow


def _keras_predictions(services, config_id, x):
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory

    source = services.export_source(config_id)
    model = ModelFactory(source.model_ref, source.feature_shape, source.n_outputs, source.task,
                         entry_point=source.entry_point).build(source.hparams)
    load_checkpoint(model, source.checkpoint_path, source.checkpoint_sha256)
    return model.predict(x, batch_size=512, verbose=0)


def _validation(services, config_id):
    from hopper.engine.data import as_matrix, read_partition

    source = services.export_source(config_id)
    x, y = read_partition(source.validation_path, source.feature_shape)
    return as_matrix(x).astype(np.float32), y


def _predict(url, x):
    r = requests.post(url + ":predict", json={"instances": x.tolist()}, timeout=60)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"])


@pytest.fixture
def deploy_worker(edge_server):
    """An export worker beside the server, for deployments only: this module's export test runs its own."""
    import threading

    from hopper.edge_deploy.runner import ExportWorker

    stop = threading.Event()
    worker = ExportWorker(edge_server.services, poll=0.2, exports=False)
    thread = threading.Thread(target=worker.run, args=(stop,), name="deploy-worker", daemon=True)
    thread.start()
    yield worker
    stop.set()
    thread.join(30)


def test_deploy_the_best_config_and_compare_with_keras(edge_server, deploy_worker):
    server, services = edge_server, edge_server.services
    best = services.get_workload(server.workload_id).best["config_id"]
    x, _ = _validation(services, best)
    keras = _keras_predictions(services, best, x)

    # the web process only queues the deployment; the export worker starts the model server
    deployment = server.post(f"/configs/{best}/deploy", {"format": "tflite", "name": "digits-best"}, status=202)
    assert deployment["status"] == "requested" and deployment["pid"] is None
    running = server.wait(lambda: (d := server.get(f"/deployments/{deployment['id']}"))["status"]
                          not in ("requested", "starting") and d, 180, "the worker to start the model server")
    assert running["status"] == "running" and running["pid"] != os.getpid(), running
    url = running["url"]
    health = requests.get(url, timeout=10).json()
    assert health["state"] == "AVAILABLE" and health["config_id"] == best and health["format"] == "tflite"
    served = _predict(url, x)
    assert served.shape == keras.shape
    np.testing.assert_allclose(served, keras, atol=1e-4)
    assert np.mean(served.argmax(1) == keras.argmax(1)) >= 0.99
    bad = requests.post(url + ":predict", json={"instances": [[1, 2, 3]]}, timeout=10)
    assert bad.status_code == 400 and "shape [8, 8, 1]" in bad.json()["error"]
    assert requests.post(url.replace("digits-best", "other") + ":predict", json={"instances": x[:1].tolist()},
                         timeout=10).status_code == 404
    assert any(d["id"] == deployment["id"] for d in server.get("/deployments"))

    stopping = server.post(f"/deployments/{deployment['id']}/stop", status=200)
    assert stopping["status"] in ("stopping", "stopped")
    stopped = server.wait(lambda: (d := server.get(f"/deployments/{deployment['id']}"))["status"] == "stopped"
                          and d, 60, "the worker to stop the model server")
    assert stopped["stopped_at"]
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    assert server.post(f"/deployments/{deployment['id']}/stop", status=409)["error"]["code"] == "invalid_state"
    # the audit log has both the deploy and the stop
    events = [e for e in server.get("/events", limit=50)
              if (e["action"], e["object_type"], e["object_id"]) in (("deploy_config", "config", best),
                                                                     ("stop_deployment", "deployment", deployment["id"]))]
    assert [e["action"] for e in events][:2] == ["stop_deployment", "deploy_config"], events
    assert events[0]["actor"] == "admin" and events[0]["after"] == {"status": "stopping"}  # the admin token's person


def test_a_deployment_stopped_before_the_worker_started_it_never_starts(edge_server):
    server = edge_server
    requested = server.post(f"/configs/{server.config_ids[1]}/deploy", {"format": "keras"}, status=202)
    assert requested["status"] == "requested"
    stopped = server.post(f"/deployments/{requested['id']}/stop", status=200)
    assert stopped["status"] == "stopped" and stopped["stopped_at"] and stopped["pid"] is None
    assert server.services.claim_deployment() is None  # nothing left for a worker


def test_serve_model_cli_with_the_keras_model(edge_server, tmp_path):
    services = edge_server.services
    config_id = edge_server.config_ids[1]
    x, _ = _validation(services, config_id)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "hopper.cli", "serve-model", str(config_id), "--format", "keras",
                             "--port", str(port), "--name", "k"], env=child_env(services.settings), stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/models/k"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        served = _predict(url, x[:64])
        np.testing.assert_allclose(served, _keras_predictions(services, config_id, x[:64]), atol=1e-5)
        row = next(d for d in services.list_deployments() if d.name == "k")
        assert row.status == "running" and row.pid == proc.pid and row.format == "keras"
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    row = next(d for d in services.list_deployments() if d.name == "k")
    assert row.status == "stopped"
    assert os.path.exists(tmp_path / "serve.log")


def test_export_requested_over_rest_runs_in_the_export_worker(edge_server):
    from hopper.edge_deploy.runner import ExportWorker
    from hopper.engine.store import WorkloadRow

    server, services = edge_server, edge_server.services
    config_id = server.config_ids[1]
    request = server.post(f"/configs/{config_id}/exports", {"quantizations": ["int8"], "profile": True}, status=202)
    assert request["status"] == "queued"
    assert server.post("/configs/999999/exports", {}, status=404)["error"]["field"] == "config_id"
    done = ExportWorker(services).run_once()  # `hopper export --request-id` in a child process
    assert done.id == request["id"] and done.status == "done", done
    export = next(e for e in server.get(f"/configs/{config_id}/exports") if e["id"] == done.export_ids[0])
    assert export["quantization"] == "int8" and export["tflite_accuracy"] > 0.5
    if server.get("/devices"):  # profile=True: one job per registered device
        assert {j["export_id"] for j in server.get("/jobs")} >= {export["id"]}

    # export_top_k: a finished workload asks for its best configs once
    with services.store.session() as s:
        s.get(WorkloadRow, server.workload_id).export_top_k = 1
    try:
        made = services.enqueue_top_k_exports()
        best = services.get_workload(server.workload_id).best["config_id"]
        assert [(r.config_id, r.origin, r.profile) for r in made] == [(best, "top_k", True)]
        assert services.enqueue_top_k_exports() == []
        for _ in made:
            services.finish_export_request(services.claim_export_request().id, error="not run in this test")
    finally:
        with services.store.session() as s:
            s.get(WorkloadRow, server.workload_id).export_top_k = None
