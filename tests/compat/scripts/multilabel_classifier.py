"""Multi-label classification: several independent yes/no labels per example, sigmoid outputs and
binary crossentropy (the usual Keras recipe, e.g. tagging)."""

import keras
from keras import layers

NUM_TAGS = 4


def build_model(hp):
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        layers.Dense(hp.Int("units", 16, 128, step=16, default=64), activation="relu"),
        layers.Dense(NUM_TAGS, activation="sigmoid"),
    ])
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 3e-2, sampling="log", default=1e-2)),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy")],
    )
    return model
