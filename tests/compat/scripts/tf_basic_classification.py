"""Basic classification: classify images of clothing (TensorFlow tutorial style).

The model is built and compiled at module level; the first layer flattens the 28x28 images and the
input shape is only known when the model first sees data. The last layer returns logits.
"""

import tensorflow as tf

class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

model = tf.keras.Sequential([
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(128, activation="relu"),
    tf.keras.layers.Dense(10),
])

model.compile(optimizer="adam",
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

probability_model = None  # built after training in the tutorial: tf.keras.Sequential([model, Softmax()])
