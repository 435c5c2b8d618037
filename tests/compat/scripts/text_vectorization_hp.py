"""Basic text classification (TensorFlow tutorial) as a KerasTuner builder over raw strings.

The vectorisation layer learns its vocabulary from the training texts passed to the builder; the
model ends in a logit, as in the tutorial.
"""

import tensorflow as tf
from tensorflow.keras import layers, losses

max_features = 1000
sequence_length = 40


def build_model(hp, data):
    vectorize_layer = layers.TextVectorization(
        max_tokens=max_features,
        output_mode="int",
        output_sequence_length=sequence_length)
    vectorize_layer.adapt(data.frame["text"].to_numpy())
    embedding_dim = hp.Choice("embedding_dim", [8, 16])
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(1,), dtype=tf.string),
        vectorize_layer,
        layers.Embedding(max_features, embedding_dim),
        layers.Dropout(0.2),
        layers.GlobalAveragePooling1D(),
        layers.Dropout(0.2),
        layers.Dense(1)])
    model.compile(loss=losses.BinaryCrossentropy(from_logits=True),
                  optimizer=tf.keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 3e-2, sampling="log",
                                                              default=1e-2)),
                  metrics=[tf.metrics.BinaryAccuracy(threshold=0.0)])
    return model
