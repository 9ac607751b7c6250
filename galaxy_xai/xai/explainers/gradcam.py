"""Grad-CAM: the last convolutional feature map weighted by its spatially averaged gradient."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from galaxy_xai.config import XaiConfig
from galaxy_xai.xai.explainers.core import (
    Explainer,
    check_inputs,
    finish_maps,
    map_chunks,
    progress_bar,
    score_model,
)

POOL_LAYER = "pool"


def grid_layer(model: keras.Model, grid_px: int) -> str:
    """The name of the last layer of ``model`` whose output is a feature map of ``grid_px`` x ``grid_px``
    pixels (batch, grid_px, grid_px, channels): the deepest, most class-specific features that still
    resolve that grid (Jiang et al. 2021 read Layer-CAM off such earlier layers). A ValueError lists
    the grids the model has when none matches."""
    found, grids = None, []
    for lay in model.layers:
        shape = lay.output.shape if hasattr(lay, "output") else None
        if shape is None or len(shape) != 4 or shape[1] != shape[2]:
            continue
        grids.append(int(shape[1]))
        if shape[1] == grid_px:
            found = lay.name
    if found is None:
        have = ", ".join(str(g) for g in sorted(set(grids), reverse=True)) or "none"
        raise ValueError(f"xai.cam.grid_px = {grid_px}: model {model.name!r} has no {grid_px} x {grid_px} feature map (its grids: {have})")
    return found


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


def upsample_cams(cams: np.ndarray, height: int, width: int) -> np.ndarray:
    """CAMs (n, h, w) -> (n, H, W) by linear interpolation, corners aligned (``scipy.ndimage.zoom``,
    order 1, as tf-keras-vis does)."""
    return ndimage.zoom(cams, (1.0, height / cams.shape[1], width / cams.shape[2]), order=1)


@dataclasses.dataclass(frozen=True)
class ConvCam(Explainer):
    """A class-activation map: a weighted sum of the channels of a convolutional feature map,
    computed on its grid by a compiled per-chunk function, upsampled to the input
    (:func:`upsample_cams`) and normalised per map: float32 (n, H, W) in [0, 1]. Deterministic:
    ``seed`` and ``keys`` are ignored.

    The feature map: the layer named ``layer``, else the last one of ``grid_px`` x ``grid_px``
    pixels (:func:`grid_layer`; ``xai.cam.grid_px``), else the last convolutional block
    (:func:`feature_tensor`). Subclasses implement :meth:`chunk_function`, which says how the
    channels are weighted, and find the layer with :meth:`feature_layer`.
    """

    _: dataclasses.KW_ONLY
    layer: str | None = None
    grid_px: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None and self.grid_px is not None:
            raise ValueError(f"{self.name}: give the feature map's layer ({self.layer!r}) or its grid ({self.grid_px} px), not both")
        if self.grid_px is not None and self.grid_px < 1:
            raise ValueError(f"{self.name}: grid_px = {self.grid_px}: expected >= 1")

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> ConvCam:
        return cls(index, batch_size=xai.smoothgrad.batch_size, grid_px=xai.cam.grid_px)

    def feature_layer(self, model: keras.Model) -> str | None:
        """The name of the layer whose feature map is weighed on ``model`` (None: the last conv block)."""
        return self.layer if self.grid_px is None else grid_layer(model, self.grid_px)

    def chunk_function(self, model: keras.Model, shape: tuple[int, ...]) -> tuple[Callable, int]:
        """For images of ``shape`` (n, H, W, C): (a compiled function (a chunk of images (g, H, W, C),
        output index) -> CAMs (g, h, w), the chunk size g)."""
        raise NotImplementedError

    def cams(self, model, images, progress=False) -> np.ndarray:
        """The maps on the conv grid before upsampling and normalisation, float32 (n, h, w)."""
        images = check_inputs(model, images, self.index)
        chunk_cams, size = self.chunk_function(model, images.shape)
        with progress_bar(len(images), self.name, progress) as bar:
            return map_chunks(chunk_cams, [images], size, [tf.constant(self.index, tf.int32)], bar=bar)

    def explain(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        cams = self.cams(model, images, progress=progress)
        return finish_maps(upsample_cams(cams, *np.shape(images)[1:3]), self.name)


@functools.lru_cache(maxsize=16)
def gradient_cam_function(
    model: keras.Model,
    layer: str | None,
    chunk_shape: tuple[int, int, int, int],
    channel_weights: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
):
    """The compiled gradient-weighted CAM of one chunk: (images (b, H, W, C), output index) -> CAMs
    (b, h, w) = relu(sum_k w_k A^k), the weights from the feature map A (b, h, w, K) and the gradient
    of the class's pre-activation score with respect to it by ``channel_weights(A, dS/dA)`` ->
    (b, 1, 1, K) (one weight per channel) or (b, h, w, K) (one per pixel, Layer-CAM). Cached (keyed
    by the model object, the layer, the chunk shape and the weighting): a trace costs more than a call."""
    scores = score_model(model)
    both = keras.Model(scores.inputs, [feature_tensor(scores, layer), scores.outputs[0]])

    @tf.function(input_signature=[tf.TensorSpec(chunk_shape, tf.float32), tf.TensorSpec((), tf.int32)])
    def chunk_cams(x, index):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)  # records the graph from the input on, so the feature map's gradient exists
            features, logits = both(x, training=False)
            score = tf.reduce_sum(logits[:, index])
        weights = channel_weights(features, tape.gradient(score, features))
        return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))

    return chunk_cams


def gradcam_weights(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """Grad-CAM's channel weights: the spatially averaged gradient (b, 1, 1, K)."""
    return tf.reduce_mean(grads, axis=(1, 2), keepdims=True)


@dataclasses.dataclass(frozen=True)
class GradCam(ConvCam):
    """Grad-CAM maps of the pre-activation score: float32 (n, H, W) in [0, 1].

    tf-keras-vis ``Gradcam``'s semantics (checked equal in the tests): the feature map of ``layer``
    (see :func:`feature_tensor`) weighted by its spatially averaged gradient, summed over channels,
    rectified, upsampled to the input size by linear interpolation and normalised per map. Computed
    here rather than through tf-keras-vis, whose layer lookup cannot reach inside a nested backbone.
    Its attribution is its own, ``"gradcam"``.
    """

    name = "gradcam"

    def chunk_function(self, model, shape):
        size = min(shape[0], self.batch_size)
        return gradient_cam_function(model, self.feature_layer(model), (size, *shape[1:]), gradcam_weights), size


def layercam_weights(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """Layer-CAM's weights: the positive gradient at every pixel and channel (b, h, w, K)."""
    return tf.nn.relu(grads)


@dataclasses.dataclass(frozen=True)
class LayerCam(ConvCam):
    """Layer-CAM maps (Jiang, Zhang, Hou, Cheng & Wei 2021, *LayerCAM: exploring hierarchical class
    activation maps for localization*, IEEE TIP 30, 5875) of the pre-activation score: float32
    (n, H, W) in [0, 1].

    Each pixel of each channel of the feature map A is weighted by its own positive gradient,
    relu(sum_k relu(dS/dA^k_ij) A^k_ij), instead of Grad-CAM's one spatially averaged weight per
    channel: the weights stay local, so the map stays meaningful at an earlier, finer layer
    (``grid_px``: 16 or 32 at 64 px input), where Grad-CAM's global weights blur it. On the map
    before global average pooling the gradient is the same at every pixel, and it equals Grad-CAM++.
    """

    name = "layercam"

    def chunk_function(self, model, shape):
        size = min(shape[0], self.batch_size)
        return gradient_cam_function(model, self.feature_layer(model), (size, *shape[1:]), layercam_weights), size
