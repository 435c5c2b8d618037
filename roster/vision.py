"""Image and tabular builders: mlp, cnn, MobileNetV2, ResNet50."""

from __future__ import annotations

import math
from typing import Any

from hopper.roster._compile import compile_for_task, maybe_load_weights, output_layer


def _hp(config: dict, key: str, default: Any) -> Any:
    value = config.get(key)
    return default if value is None else value


def build_mlp(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for i in range(int(_hp(config, "layers", 2))):
        x = keras.layers.Dense(int(_hp(config, "units", 128)), activation=_hp(config, "activation", "relu"),
                               name=f"dense_{i}")(x)
        if float(_hp(config, "dropout", 0.0)) > 0:
            x = keras.layers.Dropout(float(config["dropout"]))(x)
    model = keras.Model(inputs, output_layer(n_outputs, task, label_kind)(x), name="mlp")
    maybe_load_weights(model, config)
    compile_for_task(model, config, task, label_kind)
    return model


def _as_image(inputs, input_shape: tuple):  # noqa: ANN001, ANN202
    """Tabular features with a square count become a one-channel image (digits: 64 -> 8x8x1)."""
    import keras

    if len(input_shape) == 3:
        return inputs, tuple(input_shape)
    if len(input_shape) == 2:
        return keras.layers.Reshape((*input_shape, 1))(inputs), (*input_shape, 1)
    side = int(math.isqrt(int(input_shape[0])))
    if side * side != int(input_shape[0]):
        from hopper.engine.errors import ValidationError

        raise ValidationError(f"an image model needs image-shaped features; got {input_shape}", field="model")
    return keras.layers.Reshape((side, side, 1))(inputs), (side, side, 1)


def build_cnn(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x, shape = _as_image(inputs, input_shape)
    filters = int(_hp(config, "filters", 32))
    kernel = int(_hp(config, "kernel_size", 3))
    size = min(shape[0], shape[1])
    for i in range(int(_hp(config, "conv_layers", 2))):
        x = keras.layers.Conv2D(filters * (2**i), kernel, padding="same", activation="relu", name=f"conv_{i}")(x)
        if size >= 4:
            x = keras.layers.MaxPooling2D(2)(x)
            size //= 2
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(int(_hp(config, "dense_units", 64)), activation="relu", name="dense")(x)
    if float(_hp(config, "dropout", 0.0)) > 0:
        x = keras.layers.Dropout(float(config["dropout"]))(x)
    model = keras.Model(inputs, output_layer(n_outputs, task, label_kind)(x), name="cnn")
    maybe_load_weights(model, config)
    compile_for_task(model, config, task, label_kind)
    return model


def _application(app_name: str, config: dict, input_shape: tuple, n_outputs: int, task: str,
                 label_kind: str | None = None, **kwargs: Any):  # noqa: ANN202
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x, shape = _as_image(inputs, input_shape)
    min_size = int(_hp(config, "min_size", 32))
    if shape[0] < min_size or shape[1] < min_size:
        # keras.applications need at least 32x32; upsample small images instead of refusing them.
        x = keras.layers.Resizing(max(shape[0], min_size), max(shape[1], min_size))(x)
        shape = (max(shape[0], min_size), max(shape[1], min_size), shape[2])
    app = getattr(keras.applications, app_name)
    base = app(include_top=False, weights=None, input_shape=shape, pooling="avg", **kwargs)
    x = base(x)
    if float(_hp(config, "dropout", 0.0)) > 0:
        x = keras.layers.Dropout(float(config["dropout"]))(x)
    model = keras.Model(inputs, output_layer(n_outputs, task, label_kind)(x), name=app_name.lower())
    maybe_load_weights(model, config)
    compile_for_task(model, config, task, label_kind)
    return model


def build_mobilenet_v2(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    return _application("MobileNetV2", config, input_shape, n_outputs, task, label_kind, alpha=float(_hp(config, "alpha", 0.35)))


def build_resnet50(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    return _application("ResNet50", config, input_shape, n_outputs, task, label_kind)
