"""A ``HyperModel`` that takes the problem's shape in its constructor (KerasTuner's HyperModel docs)."""

import keras
import keras_tuner as kt


class ImageHyperModel(kt.HyperModel):
    def __init__(self, input_shape, num_classes, name=None, tunable=True):
        super().__init__(name=name, tunable=tunable)
        self.input_shape = input_shape
        self.num_classes = num_classes

    def build(self, hp):
        model = keras.Sequential()
        model.add(keras.Input(shape=self.input_shape))
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dense(units=hp.Int("units", min_value=32, max_value=256, step=32),
                                     activation="relu"))
        model.add(keras.layers.Dense(self.num_classes, activation="softmax"))
        model.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", values=[1e-2, 3e-3, 1e-3])),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
