"""Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu 2020, *Score-CAM: score-weighted
visual explanations for convolutional neural networks*, CVPR workshops): a class activation map
weighted by forward passes instead of gradients.

Each channel k of the last convolutional feature map A (the tensor of
:func:`~galaxy_xai.xai.explainers.gradcam.feature_tensor`, shape (h, w, K)) is upsampled to the input
(linear, corners aligned, as ``scipy.ndimage.zoom`` order 1), min-max normalised to a mask M^k in
[0, 1] and multiplied into the image; the model's confidence in the class on that masked image,
c_k = y(x * M^k), is the channel's weight, and the map is relu(sum_k c_k A^k) on the conv grid,
upsampled to the input like Grad-CAM and min-max normalised: float32 (n, H, W) in [0, 1]. **Its
true resolution is the conv grid** (h x w at 64 px: 4 x 4 for vgg_small and resnet_small,
2 x 2 for xception_small; 7 x 7 for the paper's backbones at 224 px). Cost: K forward
passes per image (160 for vgg_small), at most ``batch_size`` at a time through one compiled function.

The confidence: the authors' code and tf-keras-vis take the class's softmax probability over the
model's outputs. Our models' outputs are 37 *independent* sigmoid vote fractions of different
questions, where a softmax across them would mix unrelated answers; the class's own output
(the model's prediction, the sigmoid of the pre-activation score) is the confidence here. On a
two-way softmax [S/2, -S/2], whose first probability is sigmoid(S), tf-keras-vis 0.8.7's
``Scorecam`` gives the same map (checked in ``tests/test_explainers_more.py``); on our 37 outputs
it cannot express this weight, its layer lookup cannot reach inside a nested backbone, and it is
slower (16 galaxies, vgg_small at 64 px, 2 shared CPU cores: 1.8 s here, 4.3 s through
tf-keras-vis's ``predict``), so this module is the implementation. Deterministic: ``seed`` and
``keys`` are ignored.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from galaxy_xai.xai.explainers.core import sample_layout
from galaxy_xai.xai.explainers.gradcam import ConvCam, feature_tensor


def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """float32 (n_out, n_in): linear interpolation with corners aligned (``ndimage.zoom`` order 1)."""
    matrix = np.zeros((n_out, n_in), np.float32)
    if n_in == 1 or n_out == 1:
        matrix[:, 0] = 1.0
        return matrix
    where = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    low = np.minimum(np.floor(where).astype(int), n_in - 2)
    frac = where - low
    matrix[np.arange(n_out), low] = 1.0 - frac
    matrix[np.arange(n_out), low + 1] = frac
    return matrix


@functools.lru_cache(maxsize=8)
def _scorecam_function(
    model: keras.Model, layer: str | None, chunk_shape: tuple[int, int, int, int], k: int, steps: int
):
    """The compiled Score-CAM of one chunk: (images (g, H, W, C), output index) -> CAMs (g, h, w).

    Channel j of image i is masked copy i * k + (j mod k) of step j // k; the surplus channels of
    the last step get weight 0.
    """
    g, height, width, _ = chunk_shape
    features_model = keras.Model(model.inputs, feature_tensor(model, layer))
    _, h, w, n_channels = features_model.output.shape
    rows, cols = tf.constant(interpolation_matrix(height, h)), tf.constant(interpolation_matrix(width, w))

    @tf.function(input_signature=[tf.TensorSpec(chunk_shape, tf.float32), tf.TensorSpec((), tf.int32)])
    def chunk_cams(x, index):
        features = features_model(x, training=False)  # (g, h, w, K)
        x_copies = tf.repeat(x, k, axis=0)
        weights = tf.TensorArray(tf.float32, size=steps)
        for step in tf.range(steps):
            channel = step * k + tf.range(k)
            valid = tf.cast(channel < n_channels, tf.float32)
            a = tf.gather(features, tf.minimum(channel, n_channels - 1), axis=-1)  # (g, h, w, k)
            up = tf.einsum("Hh,ghwk,Ww->gkHW", rows, a, cols)
            lo = tf.reduce_min(up, axis=(2, 3), keepdims=True)
            span = tf.reduce_max(up, axis=(2, 3), keepdims=True) - lo
            masks = tf.math.divide_no_nan(up - lo, span)  # a constant channel masks everything out
            masked = x_copies * tf.reshape(masks, (g * k, height, width, 1))
            confidence = tf.reshape(model(masked, training=False)[:, index], (g, k))
            weights = weights.write(step, tf.transpose(confidence * valid[None, :]))  # (k, g)
        c = tf.transpose(weights.concat())[:, :n_channels]  # (g, K)
        return tf.nn.relu(tf.einsum("ghwk,gk->ghw", features, c))

    return chunk_cams


@dataclasses.dataclass(frozen=True)
class ScoreCam(ConvCam):
    """Score-CAM maps of the class's output: float32 (n, H, W) in [0, 1], conv-grid resolution.

    ``layer`` names the feature map as for :class:`~galaxy_xai.xai.explainers.gradcam.GradCam`.
    """

    name = "scorecam"

    def chunk_function(self, model, shape):
        layer = self.feature_layer(model)
        n_channels = feature_tensor(model, layer).shape[-1]
        g, k, steps = sample_layout(n_channels, self.batch_size)
        return _scorecam_function(model, layer, (g, *shape[1:]), k, steps), g
