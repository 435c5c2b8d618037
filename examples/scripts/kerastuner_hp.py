"""A KerasTuner-style builder: Hopper reads the search space from the hp.* calls."""

import keras


def make_classifier(hp):
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(hp.Int("units", 32, 128, step=32), activation="relu"),
        keras.layers.Dropout(hp.Choice("dropout", [0.0, 0.2])),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
