"""Occlusion (Zeiler & Fergus 2014, *Visualizing and understanding convolutional networks*, ECCV):
slide a grey patch over the image and record how much the class score drops.

A square patch of ``patch`` x ``patch`` map pixels is moved over the image with ``stride`` pixels
between positions (top-left corners 0, stride, 2 stride, ... and always the last position that
touches the right and bottom edges, so every pixel is covered). Inside the patch the image is
replaced by its *sky level*: the median of each colour channel over the whole image (the galaxy
covers a minority of the frame), so an occluded region looks like empty sky rather than a black
hole the model never saw in training. For each position p the drop is

    d_p = score(x) - score(x with patch p filled),

in units of the class's pre-activation score; each pixel's map value is the mean of d_p over the
positions whose patch covers it (as Captum's ``Occlusion``), and the map is its positive part (the
regions whose removal lowers the score), min-max normalised: float32 (n, H, W) in [0, 1].

Resolution: the map is on the input grid but its true resolution is the ``stride`` (and it is
smoothed over ``patch``): features smaller than the patch are not resolved. Cost: one forward pass
per position, (ceil((H - patch) / stride) + 1)^2 per image (225 for 64 px, patch 8, stride 4),
batched at most ``batch_size`` at a time through one compiled function. No gradients: the map
does not suffer from gradient saturation. Deterministic: ``seed`` and ``keys`` are ignored.
tf-keras-vis has no occlusion.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from galaxy_xai.config import XaiConfig
from galaxy_xai.xai.explainers.core import (
    Explainer,
    check_inputs,
    chunks,
    finish_maps,
    progress_bar,
    sample_layout,
    score_model,
)


def patch_corners(height: int, width: int, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(tops, lefts) int32 (P,) of every patch position, row-major; the last row and column of
    positions touch the bottom and right edges."""

    def starts(side: int) -> list[int]:
        out = list(range(0, side - patch + 1, stride))
        return out if out[-1] == side - patch else [*out, side - patch]

    tops, lefts = np.meshgrid(starts(height), starts(width), indexing="ij")
    return tops.ravel().astype(np.int32), lefts.ravel().astype(np.int32)


def patch_masks(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """float32 (P, H, W) masks, 1 inside each patch position (for checks: the compiled function builds
    each step's masks from the corners, so memory does not grow with P x H x W)."""
    tops, lefts = patch_corners(height, width, patch, stride)
    rows, cols = np.arange(height), np.arange(width)
    inside_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + patch)
    inside_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + patch)
    return (inside_rows[:, :, None] & inside_cols[:, None, :]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _occlusion_function(
    model: keras.Model, chunk_shape: tuple[int, int, int, int], masks_key: tuple, k: int, steps: int
):
    """The compiled occlusion of one chunk: (images (g, H, W, C), output index) -> summed drops (g, H, W).

    ``masks_key`` = (patch, stride) rebuilds the masks; position p is copy i * k + (p mod k) of step
    p // k, the surplus copies of the last step counted with weight 0.
    """
    g, height, width, _ = chunk_shape
    patch = masks_key[0]
    tops, lefts = (tf.constant(a) for a in patch_corners(height, width, *masks_key))
    n_masks = int(tops.shape[0])
    rows, cols = tf.range(height, dtype=tf.int32), tf.range(width, dtype=tf.int32)
    scores = score_model(model)

    @tf.function(input_signature=[tf.TensorSpec(chunk_shape, tf.float32), tf.TensorSpec((), tf.int32)])
    def chunk_drops(x, index):
        clean = scores(x, training=False)[:, index]  # (g,)
        sky = tf.repeat(channel_median(x), k, axis=0)  # (g * k, 1, 1, C)
        x_copies = tf.repeat(x, k, axis=0)
        total = tf.zeros((g, height, width))
        for step in tf.range(steps):
            p = step * k + tf.range(k)
            valid = tf.cast(p < n_masks, tf.float32)  # (k,)
            top = tf.gather(tops, tf.minimum(p, n_masks - 1))[:, None]
            left = tf.gather(lefts, tf.minimum(p, n_masks - 1))[:, None]
            inside_rows = tf.cast((rows >= top) & (rows < top + patch), tf.float32)  # (k, H)
            inside_cols = tf.cast((cols >= left) & (cols < left + patch), tf.float32)  # (k, W)
            m = inside_rows[:, :, None] * inside_cols[:, None, :]  # (k, H, W)
            m_copies = tf.tile(m, [g, 1, 1])[..., None]
            occluded = x_copies * (1.0 - m_copies) + sky * m_copies
            drop = clean[:, None] - tf.reshape(scores(occluded, training=False)[:, index], (g, k))
            total += tf.einsum("gk,khw->ghw", drop * valid[None, :], m)
        return total

    return chunk_drops


def channel_median(x: tf.Tensor) -> tf.Tensor:
    """Per-image, per-channel median (b, 1, 1, C) of a batch (b, H, W, C) (lower median for even counts
    averaged with the upper one, as NumPy's)."""
    b, h, w, c = x.shape
    flat = tf.sort(tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (b, c, h * w)), axis=-1)
    mid = h * w // 2
    median = flat[..., mid] if (h * w) % 2 else 0.5 * (flat[..., mid - 1] + flat[..., mid])
    return median[:, None, None, :]


@dataclasses.dataclass(frozen=True)
class Occlusion(Explainer):
    """Occlusion maps: the positive part of the mean score drop over the patches covering each pixel.

    ``patch`` and ``stride`` in map pixels (1 <= stride <= patch <= the image side; stride < patch
    overlaps the patches and smooths the map). Deterministic.
    """

    name = "occlusion"
    _: dataclasses.KW_ONLY
    patch: int = 8
    stride: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= self.patch:
            raise ValueError(
                f"{self.name}: patch = {self.patch}, stride = {self.stride}: expected 1 <= stride <= patch"
            )
        super().__post_init__()

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> Occlusion:
        occ = xai.occlusion
        return cls(index, batch_size=xai.smoothgrad.batch_size, patch=occ.patch, stride=occ.stride)

    def drops(self, model, images, progress=False) -> np.ndarray:
        """The mean score drop per pixel before the positive part and normalisation, float32 (n, H, W)."""
        images = check_inputs(model, images, self.index)
        n, height, width, channels = images.shape
        if self.patch > min(height, width):
            raise ValueError(f"{self.name}: patch = {self.patch} exceeds the image ({height} x {width})")
        tops, lefts = patch_corners(height, width, self.patch, self.stride)
        g, k, steps = sample_layout(len(tops), self.batch_size)
        chunk_shape = (g, height, width, channels)
        chunk_drops = _occlusion_function(model, chunk_shape, (self.patch, self.stride), k, steps)
        index = tf.constant(self.index, tf.int32)
        out = np.empty((n, height, width), np.float32)
        with progress_bar(n, f"{self.name} {self.patch}/{self.stride} px", progress) as bar:
            for start, chunk in chunks(images, g):
                stop = min(start + g, n)
                out[start:stop] = chunk_drops(chunk, index).numpy()[: stop - start]
                bar.update(stop - start)
        # Patches covering pixel (i, j): the rows of positions covering row i times the columns covering j.
        def covering(side: int, starts: np.ndarray) -> np.ndarray:
            pixels = np.arange(side)
            return ((pixels >= starts[:, None]) & (pixels < starts[:, None] + self.patch)).sum(axis=0)

        return out / np.outer(covering(height, np.unique(tops)), covering(width, np.unique(lefts)))

    def explain(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        drops = self.drops(model, images, progress=progress)
        return finish_maps(np.maximum(drops, 0.0), f"{self.name} patch {self.patch} px")
