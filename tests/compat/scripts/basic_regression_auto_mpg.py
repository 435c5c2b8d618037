"""Basic regression: predict fuel efficiency (TensorFlow tutorial), the DNN with a normalisation layer.

The normaliser is adapted on ``train_features`` (the training rows without the label, prepared with
pandas earlier in the tutorial), and the model is built and compiled at module level.
"""

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

normalizer = tf.keras.layers.Normalization(axis=-1)
normalizer.adapt(np.array(train_features))  # noqa: F821 - prepared by the data cells


def build_and_compile_model(norm):
    model = tf.keras.Sequential([
        norm,
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1)
    ])

    model.compile(loss="mean_absolute_error",
                  optimizer=tf.keras.optimizers.Adam(0.001))
    return model


dnn_model = build_and_compile_model(normalizer)
