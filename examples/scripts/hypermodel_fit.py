"""A keras_tuner.HyperModel that overrides fit(): Hopper calls its fit for every sub-epoch."""

import keras
import keras_tuner as kt


class DigitsHyperModel(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 32, 64, step=32), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        # Deliberately not compiled: Hopper compiles it for the task and says so.
        return model

    def fit(self, hp, model, x, y, **kwargs):
        kwargs["batch_size"] = hp.Choice("batch_size", [16, 32])
        return model.fit(x, y, **kwargs)
