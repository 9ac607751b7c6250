"""Grad-CAM: the last convolutional feature map weighted by its spatially averaged gradient."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from galaxy_xai.config import XaiConfig
from galaxy_xai.explainers.core import Explainer, check_inputs, chunks, finish_maps, progress_bar, score_model

POOL_LAYER = "pool"


def feature_tensor(scores: keras.Model, layer: str | None = None) -> keras.KerasTensor:
    """The feature map Grad-CAM weighs, as a tensor of the model's own graph.

    ``layer`` names a top-level layer; by default the last convolutional block, i.e. the input of
    the global pooling layer ``"pool"`` (this also reaches inside a nested backbone such as the
    keras.applications ones), else the output of the last top-level layer with a 4-D output.
    """
    names = [lay.name for lay in scores.layers]
    if layer is not None:
        if layer not in names:
            raise ValueError(f"gradcam layer = {layer!r}: no such layer in model {scores.name!r}")
        tensor = scores.get_layer(layer).output
    elif POOL_LAYER in names:
        tensor = scores.get_layer(POOL_LAYER).input
    else:
        four_d = [lay.output for lay in scores.layers if len(lay.output.shape) == 4]
        if not four_d:
            raise ValueError(
                f"model {scores.name!r} has no layer with a 4-D (batch, h, w, channels) output for Grad-CAM"
            )
        tensor = four_d[-1]
    if len(tensor.shape) != 4:
        raise ValueError(f"gradcam: the feature map must be 4-D (batch, h, w, channels), got {tensor.shape}")
    return tensor


@dataclasses.dataclass(frozen=True)
class GradCam(Explainer):
    """Grad-CAM maps of the pre-activation score: float32 (n, H, W) in [0, 1].

    tf-keras-vis ``Gradcam``'s semantics (checked equal in the tests): the feature map of ``layer``
    (see :func:`feature_tensor`) weighted by its spatially averaged gradient, summed over channels,
    rectified, upsampled to the input size by linear interpolation (``scipy.ndimage.zoom``,
    order 1, as tf-keras-vis does) and normalised per map. Computed here rather than through
    tf-keras-vis, whose layer lookup cannot reach inside a nested backbone. Deterministic: ``seed``
    and ``keys`` are ignored; its attribution is its own, ``"gradcam"``.
    """

    name = "gradcam"
    _: dataclasses.KW_ONLY
    layer: str | None = None

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> GradCam:
        return cls(index, batch_size=xai.smoothgrad.batch_size)

    def __call__(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        index = self.index
        images = check_inputs(model, images, index)
        scores = score_model(model)
        both = keras.Model(scores.inputs, [feature_tensor(scores, self.layer), scores.outputs[0]])
        size = min(len(images), self.batch_size)

        @tf.function(input_signature=[tf.TensorSpec((size, *images.shape[1:]), tf.float32)])
        def chunk_cams(x):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)  # records the graph from the input on, so the feature map's gradient exists
                features, logits = both(x, training=False)
                score = tf.reduce_sum(logits[:, index])
            weights = tf.reduce_mean(tape.gradient(score, features), axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))

        cams = []
        with progress_bar(len(images), "gradcam", progress) as bar:
            for start, chunk in chunks(images, size):
                cams.append(chunk_cams(chunk).numpy()[: len(images) - start])
                bar.update(len(cams[-1]))
        cams = np.concatenate(cams)
        factors = (1.0, images.shape[1] / cams.shape[1], images.shape[2] / cams.shape[2])
        return finish_maps(ndimage.zoom(cams, factors, order=1), "gradcam")
