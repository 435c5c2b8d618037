"""Export a trained config to TFLite (float32, int8 post-training quantisation) and measure it.

The model is rebuilt from the config's hparams and its newest epoch-end checkpoint; int8 uses the
workload's validation split as the representative dataset; the accuracy of each flatbuffer is
measured on the validation split by the TFLite interpreter (``ai-edge-litert``, falling back to
``tflite-runtime``), beside the Keras model's, so that quantisation loss is visible.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from hopper.engine.entities import ExportInfo
from hopper.engine.errors import ValidationError
from hopper.engine.services import ExportSource, Services

QUANTIZATIONS = ("float32", "int8")
REPRESENTATIVE_SAMPLES = 200


def interpreter_class():  # noqa: ANN201
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the small edge install may only have tflite-runtime
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


def tflite_predict(model_content: bytes, x: np.ndarray) -> np.ndarray:
    """Run a whole batch through the interpreter (input resized to the batch)."""
    interpreter = interpreter_class()(model_content=model_content)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def convert(model, quantization: str, representative: np.ndarray) -> bytes:  # noqa: ANN001
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValidationError(f"quantization must be one of {', '.join(QUANTIZATIONS)}", field="quantization")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        samples = representative[:REPRESENTATIVE_SAMPLES]
        converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _accuracy(predictions: np.ndarray, y: np.ndarray, task: str) -> float | None:
    if task != "classification" or (y.ndim == 2 and not np.all(y.sum(axis=1) == 1)):
        return None  # regression, or multi-label: no single class per row to compare
    return float(np.mean(np.argmax(predictions, axis=1) == (np.argmax(y, axis=1) if y.ndim == 2 else y)))


def export_config(services: Services, config_id: int, quantizations: tuple[str, ...] = QUANTIZATIONS,
                  out_dir: Path | None = None, actor: str | None = None) -> list[ExportInfo]:
    """Export ``config_id`` in each quantisation; returns the recorded exports."""
    from hopper.engine.data import read_partition
    from hopper.mop_scheduler.worker.build_data import SAMPLE_ROWS, BuildData
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory
    from hopper.mop_scheduler.worker.inputs import features_for

    source: ExportSource = services.export_source(config_id)
    columns, y_val = read_partition(source.validation_path, source.feature_shape)
    options = source.entry_options or {}
    factory = ModelFactory(source.model_ref, source.feature_shape, source.n_outputs, source.task,
                           entry_point=source.entry_point, entry_args=options.get("entry_args"),
                           bind_globals=options.get("bind_globals"),
                           data_source=lambda: BuildData(columns[:SAMPLE_ROWS], y_val[:SAMPLE_ROWS]))
    model = factory.build(source.hparams)
    load_checkpoint(model, source.checkpoint_path, source.checkpoint_sha256)
    x_val = features_for(model, columns)
    if not isinstance(x_val, np.ndarray) or x_val.dtype.kind not in "biuf":
        # The interpreter is fed one numeric tensor (and int8 calibration one numeric sample at a time).
        raise ValidationError(f"config {config_id}'s model takes named or string inputs; TFLite export handles "
                              "models with one numeric input", field="config")
    x_val = x_val.astype(np.float32)
    keras_accuracy = _accuracy(model.predict(x_val, batch_size=512, verbose=0), y_val, source.task)
    out_dir = Path(out_dir or services.settings.artifact_dir / "exports" / f"workload-{source.workload_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for quantization in quantizations:
        t0 = time.perf_counter()
        blob = convert(model, quantization, x_val)
        seconds = time.perf_counter() - t0
        path = out_dir / f"config-{config_id}-ckpt-{source.checkpoint_id}-{quantization}.tflite"
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        tflite_accuracy = _accuracy(tflite_predict(blob, x_val), y_val, source.task)
        results.append(services.record_export(
            source, quantization=quantization, path=str(path), sha256=hashlib.sha256(blob).hexdigest(),
            size=len(blob), keras_accuracy=keras_accuracy, tflite_accuracy=tflite_accuracy, seconds=seconds,
            actor=actor))
    return results
