"""Integrated Gradients (Sundararajan, Taly & Yan 2017, *Axiomatic attribution for deep networks*,
ICML): the gradient integrated along the straight path from a baseline image x' to the image x,

    IG_i(x) = (x_i - x'_i) * integral_0^1 d score / d x_i (x' + a (x - x')) da,

of the class's pre-activation score, per pixel and colour channel (shape (n, H, W, C), units of
the score). The integral is the trapezoid rule on ``steps`` m equal intervals (m + 1 gradients per
image; weights 1/(2m) at a = 0 and 1, 1/m between), so IG is exact for a model linear in its input
and completeness, sum_i IG_i = score(x) - score(x'), holds up to the quadrature error otherwise.

The baseline (``baseline``) is what "absence of a feature" means; the choice matters (Sturmfels,
Lundberg & Lee 2020, *Visualizing the impact of feature attribution baselines*, Distill):

* ``"blur"`` (default): the image Gaussian-blurred with sigma ``blur_sigma`` map pixels per
  channel (``scipy.ndimage.gaussian_filter``, reflecting edges). It keeps the galaxy's smooth light
  and removes structure finer than sigma, so IG credits a bar, not the disk it sits in.
* ``"black"``: zeros, the original paper's choice (then IG of a linear model is input x gradient).
* ``"sky"``: each channel of the image filled with its median, the sky level (the galaxy occupies
  a minority of the frame), the fill of :mod:`~galaxy_xai.explainers.occlusion`.

The map is the positive part of the channel sum, max(0, sum_c IG_c) (as ``input_x_gradient``: the
light whose presence raises the score), min-max normalised: float32 (n, H, W) in [0, 1] at full
input resolution. Deterministic: ``seed`` and ``keys`` are ignored. tf-keras-vis has no IG.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from galaxy_xai.config import IG_BASELINES, XaiConfig
from galaxy_xai.explainers.core import (
    Explainer,
    check_inputs,
    chunks,
    finish_maps,
    input_gradient,
    progress_bar,
    sample_layout,
    score_model,
)

BASELINES = IG_BASELINES


def baselines(images: np.ndarray, kind: str, blur_sigma: float) -> np.ndarray:
    """Baseline images float32 (n, H, W, C) of ``images`` (n, H, W, C): see the module docstring."""
    if kind == "black":
        return np.zeros_like(images, dtype=np.float32)
    if kind == "sky":
        sky = np.median(images, axis=(1, 2), keepdims=True)
        return np.broadcast_to(sky, images.shape).astype(np.float32)
    if kind == "blur":
        blurred = ndimage.gaussian_filter(images, sigma=(0, blur_sigma, blur_sigma, 0), mode="reflect")
        return blurred.astype(np.float32)
    raise ValueError(f"integrated_gradients: baseline = {kind!r}: expected one of {', '.join(BASELINES)}")


@functools.lru_cache(maxsize=8)
def _ig_function(model: keras.Model, chunk_shape: tuple[int, int, int, int], m: int, k: int, steps: int):
    """The compiled IG of one chunk: (images, baselines (g, H, W, C), output index) -> IG (g, H, W, C).

    Path point j = 0..m of image i is copy i * k + (j mod k) of step j // k; the surplus points of
    the last step are computed with weight 0. Cached like SmoothGrad's (a trace costs seconds).
    """
    g, height, width, channels = chunk_shape
    scores = score_model(model)
    spec = tf.TensorSpec(chunk_shape, tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec((), tf.int32)])
    def chunk_ig(x, base, index):
        x_copies, base_copies = tf.repeat(x, k, axis=0), tf.repeat(base, k, axis=0)
        total = tf.zeros_like(x)
        for step in tf.range(steps):
            j = tf.cast(step * k + tf.range(k), tf.float32)  # path point indices of this step
            weight = tf.where((j == 0) | (j == m), 0.5 / m, 1.0 / m) * tf.cast(j <= m, tf.float32)
            alpha = tf.tile(tf.minimum(j / m, 1.0), [g])[:, None, None, None]
            grads = input_gradient(scores, index, base_copies + alpha * (x_copies - base_copies))
            grads = tf.reshape(grads, (g, k, height, width, channels))
            total += tf.reduce_sum(grads * weight[None, :, None, None, None], axis=1)
        return (x - base) * total

    return chunk_ig


def integrated_gradients(
    model: keras.Model,
    images: np.ndarray,
    base: np.ndarray,
    index: int,
    steps: int,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Raw IG attributions float32 (n, H, W, C) of ``images`` against baselines ``base`` (same shape)."""
    images = check_inputs(model, images, index)
    base = np.asarray(base, dtype=np.float32)
    if base.shape != images.shape:
        raise ValueError(f"integrated_gradients: baselines {base.shape} must match images {images.shape}")
    g, k, n_steps = sample_layout(steps + 1, batch_size)
    chunk_ig = _ig_function(model, (g, *images.shape[1:]), steps, k, n_steps)
    out = np.empty(images.shape, dtype=np.float32)
    index_t = tf.constant(index, tf.int32)
    with progress_bar(len(images), f"integrated_gradients m={steps}", progress) as bar:
        for (start, chunk), (_, base_chunk) in zip(chunks(images, g), chunks(base, g), strict=True):
            stop = min(start + g, len(images))
            out[start:stop] = chunk_ig(chunk, base_chunk, index_t).numpy()[: stop - start]
            bar.update(stop - start)
    return out


@dataclasses.dataclass(frozen=True)
class IntegratedGradients(Explainer):
    """Integrated Gradients maps, max(0, sum_c IG_c) normalised: float32 (n, H, W) in [0, 1].

    ``steps`` m >= 1 trapezoid intervals (m + 1 gradients per image, at most ``batch_size`` in
    flight); ``baseline`` one of :data:`BASELINES`; ``blur_sigma`` > 0 in map pixels (``"blur"``
    only). Deterministic.
    """

    name = "integrated_gradients"
    _: dataclasses.KW_ONLY
    steps: int = 32
    baseline: str = "blur"
    blur_sigma: float = 4.0

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(
                f"{self.name}: baseline = {self.baseline!r}: expected one of {', '.join(BASELINES)}"
            )
        if self.steps < 1 or not np.isfinite(self.blur_sigma) or self.blur_sigma <= 0:
            raise ValueError(
                f"{self.name}: steps = {self.steps} and blur_sigma = {self.blur_sigma}: "
                "expected steps >= 1 and blur_sigma > 0"
            )
        super().__post_init__()

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> IntegratedGradients:
        ig = xai.integrated_gradients
        return cls(index, batch_size=xai.smoothgrad.batch_size, steps=ig.steps, baseline=ig.baseline, blur_sigma=ig.blur_sigma)

    def attributions(self, model, images, progress=False) -> np.ndarray:
        """The raw IG attributions float32 (n, H, W, C) against this explainer's baseline."""
        images = check_inputs(model, images, self.index)
        base = baselines(images, self.baseline, self.blur_sigma)
        return integrated_gradients(model, images, base, self.index, self.steps, self.batch_size, progress)

    def __call__(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        ig = self.attributions(model, images, progress=progress)
        return finish_maps(np.maximum(ig.sum(axis=-1), 0.0), f"{self.name} ({self.baseline} baseline)")
