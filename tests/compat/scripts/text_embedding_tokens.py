"""Word embeddings on IMDB token ids (TensorFlow tutorial style), tuned with KerasTuner.

No ``Input``: the sequence length is known when the model first sees data. The output is a logit.
"""

import tensorflow as tf
from tensorflow.keras import layers

vocab_size = 500


def build_model(hp):
    model = tf.keras.Sequential([
        layers.Embedding(vocab_size, hp.Choice("embedding_dim", [8, 16, 32])),
        layers.GlobalAveragePooling1D(),
        layers.Dense(16, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 3e-2, sampling="log",
                                                               default=1e-2)),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0.0)])
    return model
