"""Grad-CAM++ (Chattopadhay, Sarkar, Howlader & Balasubramanian 2018, *Grad-CAM++: generalized
gradient-based visual explanations for deep convolutional networks*, WACV).

Grad-CAM weighs each channel k of the last convolutional feature map A (the tensor of
:func:`~galaxy_xai.xai.explainers.gradcam.feature_tensor`, shape (h, w, K)) by its spatially averaged
gradient; Grad-CAM++ weighs the positive gradients pixel by pixel, which credits several instances
of a class (or several parts of one, a bar and its ansae) rather than the strongest one:

    w_k = sum_ij alpha^k_ij relu(g^k_ij),
    alpha^k_ij = (g^k_ij)^2 / (2 (g^k_ij)^2 + sum_ab A^k_ab (g^k_ij)^3),

g = d S / d A of the class's pre-activation score S, the higher derivatives taken for the
exponential Y = exp(S) of a piecewise-linear network, as in the paper; alpha is then normalised to
unit sum over each channel's pixels (the authors' code and tf-keras-vis do so), zero denominators
count as 1. The map is relu(sum_k w_k A^k) on the conv grid, upsampled to the input by linear
interpolation (``scipy.ndimage.zoom``, order 1, as Grad-CAM) and min-max normalised: float32
(n, H, W) in [0, 1]. **Its true resolution is the conv grid** (h x w at 64 px: 4 x 4 for vgg_small
and resnet_small, 2 x 2 for xception_small; 7 x 7 for the paper's backbones at 224 px); the
upsampling only smooths it.

tf-keras-vis 0.8.7's ``GradcamPlusPlus`` computes the same map (checked equal in
``tests/test_explainers_more.py``) but multiplies every derivative by exp(S), which overflows to
inf / NaN once a logit exceeds ~88, and its layer lookup cannot reach inside a nested backbone (the
paper's keras.applications models); this module drops the factor (a positive per-image constant:
it cancels in alpha and after normalisation), reaches nested layers (the tests run it on both
cases) and compiles one cached function for all chunks and calls (16 galaxies, vgg_small at 64 px,
2 shared CPU cores: 0.01 s per call once traced, tf-keras-vis 0.15 s). Deterministic: ``seed`` and
``keys`` are ignored.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from galaxy_xai.xai.explainers.gradcam import ConvCam, gradient_cam_function


def gradcam_pp_weights(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """Grad-CAM++'s channel weights (b, 1, 1, K) from the feature map A and dS/dA (b, h, w, K): the
    alpha-weighted positive gradients of the module docstring, alpha normalised per channel."""
    second, third = tf.square(grads), tf.square(grads) * grads
    total = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
    denominator = 2.0 * second + third * total
    alphas = second / (denominator + tf.cast(second == 0.0, tf.float32))
    norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
    alphas /= norm + tf.cast(norm == 0.0, tf.float32)
    return tf.reduce_sum(alphas * tf.nn.relu(grads), axis=(1, 2), keepdims=True)


@dataclasses.dataclass(frozen=True)
class GradCamPlusPlus(ConvCam):
    """Grad-CAM++ maps of the pre-activation score: float32 (n, H, W) in [0, 1], conv-grid resolution.

    ``layer`` names the feature map as for :class:`~galaxy_xai.xai.explainers.gradcam.GradCam`
    (default: the last convolutional block).
    """

    name = "gradcam_pp"

    def chunk_function(self, model, shape):
        size = min(shape[0], self.batch_size)
        return gradient_cam_function(model, self.feature_layer(model), (size, *shape[1:]), gradcam_pp_weights), size
