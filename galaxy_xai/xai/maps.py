"""Utilities on stacks of maps (n, H, W), shared by the explainers and the bar-length estimators.

Neutral ground: the explainers (:mod:`galaxy_xai.xai.explainers`) and the measuring code
(:mod:`galaxy_xai.bars.barlength`) both normalise maps, and neither should import the other for it.
"""

from __future__ import annotations

import numpy as np


def constant_maps(maps: np.ndarray, constant_rtol: float = 0.0) -> np.ndarray:
    """Which maps of a stack (n, H, W) are constant: range <= ``constant_rtol`` x max |value|, (n,) bool."""
    maps = np.asarray(maps)
    lo = maps.min(axis=(-2, -1))
    hi = maps.max(axis=(-2, -1))
    return (hi - lo) <= constant_rtol * np.maximum(np.abs(lo), np.abs(hi))


def normalise_maps(maps: np.ndarray, constant_rtol: float = 0.0) -> np.ndarray:
    """Min-max rescale each map of a stack (n, H, W) to [0, 1]; constant maps (see
    :func:`constant_maps`) become 0, never NaN.

    Float32/64 input keeps its precision (float32 is plenty for a saliency map); float16 -> float32,
    other input -> float64.
    """
    maps = np.asarray(maps)
    if not np.issubdtype(maps.dtype, np.floating) or maps.dtype == np.float16:
        maps = maps.astype(np.float64 if not np.issubdtype(maps.dtype, np.floating) else np.float32)
    lo = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - lo
    varying = ~constant_maps(maps, constant_rtol)[..., None, None]
    return np.divide(maps - lo, span, out=np.zeros_like(maps), where=varying & (span > 0))


def within_radius(shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """True for the pixels of an (H, W) array whose centre lies within ``radius_px`` of the array's
    centre, where the galaxy is: bool (H, W)."""
    height, width = shape
    rows, cols = np.ogrid[0:height, 0:width]
    return np.hypot(rows - (height - 1) / 2, cols - (width - 1) / 2) <= radius_px


RING_PX = 0.5
"""Width of the rings of :func:`ring_means`, in map pixels: fine enough to follow a bulge's steep
profile, wide enough that every ring away from the centre holds several pixels."""


def ring_means(stack: np.ndarray) -> np.ndarray:
    """Each pixel of a stack (n, H, W) replaced by the mean of its ring about the array's centre:
    float32 (n, H, W), the stack's axisymmetric part.

    Ring j holds the pixels whose centres lie at distance [j, j + 1) x :data:`RING_PX` pixels from
    ((H - 1) / 2, (W - 1) / 2), where the galaxy is. For a square array the rings are unchanged by
    the square's eight symmetries, so the ring means of a turned image are the turned ring means; an
    axisymmetric image (up to the pixel grid) is its own ring means, and every ring keeps its total.
    """
    stack = np.asarray(stack)
    n, height, width = stack.shape
    rows, cols = np.indices((height, width))
    ring = (np.hypot(rows - (height - 1) / 2, cols - (width - 1) / 2) / RING_PX).astype(np.intp).ravel()
    order = np.argsort(ring, kind="stable")
    rings, starts, counts = np.unique(ring[order], return_index=True, return_counts=True)
    # Row by row sums (not a matrix product, whose rounding depends on how many maps are in the
    # stack): a galaxy's ring means do not depend on the batch it is measured in.
    sums = np.add.reduceat(stack.reshape(n, height * width).astype(np.float64)[:, order], starts, axis=1)
    means = sums / counts
    return means[:, np.searchsorted(rings, ring)].reshape(n, height, width).astype(np.float32)
