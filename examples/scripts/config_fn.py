"""A plain Keras builder: build_model(config) returning a compiled model.

Hopper passes the config's hyperparameters plus input_shape, num_classes and task.
"""

import keras


def build_model(config):
    model = keras.Sequential([
        keras.Input(shape=config["input_shape"]),
        keras.layers.Flatten(),
        keras.layers.Dense(config.get("units", 64), activation="relu"),
        keras.layers.Dense(config["num_classes"], activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(config.get("lr", 1e-3)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
