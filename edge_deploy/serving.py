"""``hopper serve-model``: one config behind an HTTP endpoint (TFLite interpreter or the Keras model).

    POST /v1/models/<name>:predict   {"instances": [[...], ...]}  ->  {"predictions": [[...], ...]}
    GET  /v1/models/<name>           health: {"name", "state": "AVAILABLE", "config_id", "format", ...}

The request and response shapes follow TensorFlow Serving's REST API. The process records itself in the
``deployment`` table (port, pid, status ``running``) and marks the row ``stopped`` when it exits (Ctrl-C or
SIGTERM, which is how ``POST /api/v1/deployments/{id}/stop`` ends it). It imports TensorFlow for the Keras
format and for exporting a config that has no float32 export yet: it is never run inside the web process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import numpy as np

from hopper.engine.entities import ExportInfo
from hopper.engine.errors import HopperError, ValidationError
from hopper.engine.services import Services
from hopper.engine.status import DeploymentStatus

log = logging.getLogger("hopper.edge_deploy.serving")

MAX_INSTANCES = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024


def tflite_predictor(model_content: bytes) -> Callable[[np.ndarray], np.ndarray]:
    from hopper.edge_deploy.export import interpreter_class

    interpreter = interpreter_class()(model_content=model_content)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    lock = threading.Lock()  # one interpreter, many server threads

    def predict(x: np.ndarray) -> np.ndarray:
        with lock:
            interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
            interpreter.allocate_tensors()
            if inp["dtype"] in (np.int8, np.uint8):
                scale, zero = inp["quantization"]
                x = np.clip(np.round(x / scale + zero), np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max)
            interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])
            if out["dtype"] in (np.int8, np.uint8):
                scale, zero = out["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            return y

    return predict


def keras_predictor(services: Services, config_id: int) -> Callable[[np.ndarray], np.ndarray]:
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory

    source = services.export_source(config_id)
    options = source.entry_options or {}
    model = ModelFactory(source.model_ref, source.feature_shape, source.n_outputs, source.task,
                         entry_point=source.entry_point, entry_args=options.get("entry_args"),
                         bind_globals=options.get("bind_globals")).build(source.hparams)
    load_checkpoint(model, source.checkpoint_path, source.checkpoint_sha256)
    return lambda x: np.asarray(model.predict(x, batch_size=512, verbose=0))


def float_export(services: Services, config_id: int) -> ExportInfo:
    """The config's newest float32 export of its newest checkpoint, exporting one when there is none."""
    source = services.export_source(config_id)
    rows = [e for e in services.list_exports(config_id) if e.quantization == "float32"
            and e.path.find(f"-ckpt-{source.checkpoint_id}-") >= 0 and os.path.isfile(e.path)]
    if rows:
        return rows[-1]
    from hopper.edge_deploy.export import export_config

    return export_config(services, config_id, ("float32",))[0]


def create_model_app(name: str, predict: Callable[[np.ndarray], np.ndarray], feature_shape: tuple,
                     info: dict):  # noqa: ANN201
    from flask import Flask, jsonify, request

    app = Flask(f"hopper-model-{name}")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    def error(status: int, message: str):  # noqa: ANN202
        response = jsonify({"error": message})
        response.status_code = status
        return response

    @app.get("/v1/models/<model>")
    def health(model: str):  # noqa: ANN202
        if model != name:
            return error(404, f"no model named {model!r} here (this server serves {name!r})")
        return jsonify({"name": name, "state": "AVAILABLE", **info})

    @app.post("/v1/models/<model>:predict")
    def predict_route(model: str):  # noqa: ANN202
        if model != name:
            return error(404, f"no model named {model!r} here (this server serves {name!r})")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "instances" not in body:
            return error(400, 'send JSON {"instances": [instance, ...]}')
        instances = body["instances"]
        if not isinstance(instances, list) or not instances or len(instances) > MAX_INSTANCES:
            return error(400, f"instances must be a list of 1 to {MAX_INSTANCES} inputs")
        try:
            x = np.asarray(instances, dtype=np.float32)
        except (ValueError, TypeError):
            return error(400, "instances must be numbers of one shape")
        expected = (len(instances), *feature_shape)
        if x.shape != expected:
            if x.size == int(np.prod(expected)):
                x = x.reshape(expected)  # flat instances are fine
            else:
                return error(400, f"each instance must have shape {list(feature_shape)}, got {list(x.shape[1:])}")
        return jsonify({"predictions": predict(x).tolist()})

    return app


def serve_model(services: Services, config_id: int, *, fmt: str = "tflite", host: str = "127.0.0.1",
                port: int | None = None, name: str | None = None, deployment_id: int | None = None,
                announce: Callable[[str], None] = print) -> None:
    """Serve until SIGTERM / Ctrl-C; the deployment row follows the server's life."""
    from waitress import create_server

    from hopper.serve import free_port

    if deployment_id is None:
        deployment_id = services.create_deployment(config_id, fmt=fmt, name=name, host=host, port=port).id
    row = services.get_deployment(deployment_id)
    name = row.name
    try:
        source = services.export_source(config_id)
        export_id = None
        if fmt == "tflite":
            export = float_export(services, config_id)
            export_id = export.id
            with open(export.path, "rb") as fh:
                predict = tflite_predictor(fh.read())
        elif fmt == "keras":
            predict = keras_predictor(services, config_id)
        else:
            raise ValidationError("format must be tflite or keras", field="format")
        info = {"config_id": config_id, "format": fmt, "export_id": export_id, "deployment_id": deployment_id,
                "input_shape": list(source.feature_shape), "task": source.task}
        app = create_model_app(name, predict, tuple(source.feature_shape), info)
        port = port or row.port or free_port(host)
        server = create_server(app, host=host, port=port, threads=4)
    except (HopperError, OSError) as exc:
        services.mark_deployment(deployment_id, status=DeploymentStatus.FAILED, error=getattr(exc, "message", None) or str(exc))
        raise

    def _terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    services.mark_deployment(deployment_id, status=DeploymentStatus.RUNNING, port=port, pid=os.getpid(), export_id=export_id)
    announce(f"serving config {config_id} ({fmt}) as {name!r}: POST http://{host}:{port}/v1/models/{name}:predict "
             f"(deployment {deployment_id})")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        services.mark_deployment(deployment_id, status=DeploymentStatus.STOPPED)
