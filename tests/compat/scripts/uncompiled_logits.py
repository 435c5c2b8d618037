"""A module-level model whose last Dense has no activation and that the script never compiles.

People write this when they compile in a separate training script; whoever trains it must use a
loss with ``from_logits=True``.
"""

import keras

model = keras.Sequential(
    [
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ]
)
