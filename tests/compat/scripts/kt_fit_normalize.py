"""A ``HyperModel`` whose ``fit`` standardises raw 0..255 pixels and tunes the batch size.

The statistics come from the training data and are applied to the validation data too, so the model
is only ever evaluated on inputs like the ones it trained on.
"""

import keras
import keras_tuner as kt
from keras import layers


class PixelHyperModel(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.Dense(hp.Int("units", 32, 256, step=32), activation="relu"),
            layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        if hp.Boolean("normalize", default=True):
            normalizer = layers.Normalization(axis=None)
            normalizer.adapt(x)
            x = normalizer(x)
            if validation_data is not None:
                x_val, y_val = validation_data
                validation_data = (normalizer(x_val), y_val)
        return model.fit(
            x, y,
            validation_data=validation_data,
            batch_size=hp.Choice("batch_size", [16, 32]),
            **kwargs,
        )
