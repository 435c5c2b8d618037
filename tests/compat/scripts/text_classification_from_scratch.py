"""Text classification from scratch (keras.io example): raw review strings in, one model end to end.

``TextVectorization`` learns its vocabulary from the training texts (``train_dataframe``, read with
pandas earlier); the example trains ``model`` on vectorised text, then wraps it into
``end_to_end_model``, which takes raw strings.
"""

import re
import string

import keras
import tensorflow as tf
from keras import layers


def custom_standardization(input_data):
    lowercase = tf.strings.lower(input_data)
    stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    return tf.strings.regex_replace(stripped_html, f"[{re.escape(string.punctuation)}]", "")


# Model constants.
max_features = 2000
embedding_dim = 16
sequence_length = 40

vectorize_layer = layers.TextVectorization(
    standardize=custom_standardization,
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)

# Let's make a text-only dataset (no labels) and call adapt on it:
text_ds = tf.data.Dataset.from_tensor_slices(train_dataframe["text"].to_numpy())  # noqa: F821
vectorize_layer.adapt(text_ds.batch(64))

# A integer input for vocab indices.
inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)
x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(32, activation="relu")(x)
x = layers.Dropout(0.5)(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

model = keras.Model(inputs, predictions)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

# A string input
string_input = keras.Input(shape=(1,), dtype="string")
indices = vectorize_layer(string_input)
outputs = model(indices)

end_to_end_model = keras.Model(string_input, outputs)
end_to_end_model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
