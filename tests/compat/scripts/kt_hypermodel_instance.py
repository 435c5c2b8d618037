"""A ``HyperModel`` instance made at module level, as you would pass it to ``kt.RandomSearch``.

The convolutional block count is tunable; each block's filters exist only when the block does.
"""

import keras
import keras_tuner as kt
from keras import layers


class ConvHyperModel(kt.HyperModel):
    def __init__(self, classes):
        super().__init__()
        self.classes = classes

    def build(self, hp):
        inputs = keras.Input(shape=(28, 28, 1))
        x = inputs
        for i in range(hp.Int("conv_blocks", 1, 2, default=1)):
            x = layers.Conv2D(hp.Int(f"filters_{i}", 4, 16, step=4, default=8), 3, padding="same",
                              activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x) if hp.Choice("pooling", ["flatten", "avg"]) == "avg" \
            else layers.Flatten()(x)
        outputs = layers.Dense(self.classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log",
                                                                default=3e-3)),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        return model


hypermodel = ConvHyperModel(classes=10)
