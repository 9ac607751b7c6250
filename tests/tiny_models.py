"""Tiny Keras models and images with the project's interface, shared by the explainer and heatmap tests."""

from __future__ import annotations

import keras
import numpy as np

from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.xai.explainers.core import class_index
from tests.fixtures import galaxy_image

PX = 16


def linear_model(weights: np.ndarray) -> keras.Model:
    """score = flatten(x) @ weights: its input gradient is the weight column, whatever x."""
    px, n_out = int(round((weights.shape[0] / 3) ** 0.5)), weights.shape[1]
    inputs = keras.Input((px, px, 3))
    x = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(n_out, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits))
    model.get_layer("logits").set_weights([weights.astype("float32"), np.zeros(n_out, "float32")])
    return model


def tiny_cnn(px: int = PX, seed: int = 0) -> keras.Model:
    """A small nonlinear functional model with the project's interface (pool, logits, output)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((px, px, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(len(CLASS_COLUMNS), name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits))


def galaxies(n: int, px: int = PX) -> np.ndarray:
    return np.stack([galaxy_image(i, px) for i in range(n)]).astype("float32") / 255


BAR = class_index("Class3.1")
"""The bar answer's column: the class the explainer tests explain."""
