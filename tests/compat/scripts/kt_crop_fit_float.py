"""A ``HyperModel`` whose ``fit`` crops the 28x28 pictures to their centre and returns a float.

The model's input is the cropped 21x21 picture: it cannot take the raw data at all. ``fit`` trains,
evaluates on the cropped validation pictures and returns their accuracy as the objective.
"""

import keras
import keras_tuner as kt

CROP = 21


def center_crop(images):
    offset = (images.shape[1] - CROP) // 2
    return images[:, offset:offset + CROP, offset:offset + CROP]


class CroppedDigits(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([
            keras.Input(shape=(CROP, CROP)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [64, 128]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log",
                                                                default=3e-3)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
        model.fit(center_crop(x), y, callbacks=callbacks, **kwargs)
        x_val, y_val = validation_data
        _, accuracy = model.evaluate(center_crop(x_val), y_val, verbose=0)
        return accuracy
