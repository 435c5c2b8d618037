"""Heart-disease classification with KerasTuner: named inputs per column, lookups adapted on the
training rows the builder is given (``data.frame``), width and learning rate tuned."""

import keras
import numpy as np
from keras import layers

INTEGER_CATEGORICAL = ["sex", "cp", "fbs", "restecg", "exang", "ca"]
STRING_CATEGORICAL = ["thal"]
NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "slope"]


def build_model(hp, data):
    train = data.frame
    inputs, encoded = [], []
    for name in NUMERIC:
        feature = keras.Input(shape=(1,), name=name)
        normalizer = layers.Normalization()
        normalizer.adapt(np.asarray(train[name], dtype="float32").reshape(-1, 1))
        inputs.append(feature)
        encoded.append(normalizer(feature))
    for name in INTEGER_CATEGORICAL:
        feature = keras.Input(shape=(1,), name=name, dtype="int64")
        lookup = layers.IntegerLookup(output_mode="one_hot")
        lookup.adapt(np.asarray(train[name], dtype="int64"))
        inputs.append(feature)
        encoded.append(lookup(feature))
    for name in STRING_CATEGORICAL:
        feature = keras.Input(shape=(1,), name=name, dtype="string")
        lookup = layers.StringLookup(output_mode="one_hot")
        lookup.adapt(np.asarray(train[name], dtype=str))
        inputs.append(feature)
        encoded.append(lookup(feature))
    x = layers.concatenate(encoded)
    x = layers.Dense(hp.Int("units", 16, 64, step=16, default=32), activation="relu")(x)
    x = layers.Dropout(hp.Float("dropout_rate", 0.0, 0.5, step=0.25, default=0.25))(x)
    output = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, output)
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 3e-2, sampling="log",
                                                            default=1e-2)),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model
