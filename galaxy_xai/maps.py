"""Utilities on stacks of maps (n, H, W), shared by the explainers and the bar-length estimators.

Neutral ground: the explainers (:mod:`galaxy_xai.explainers`) and the measuring code
(:mod:`galaxy_xai.barlength`) both normalise maps, and neither should import the other for it.
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
