"""Test and benchmark oracle: Algorithm 1 exactly as published, and saliency-like test maps.

:func:`published_mask` is the published threshold loop, line for line (5,000 thresholds, one
``numpy.corrcoef`` each, stop on ``corr > c_t or len(x) < l_t``). :func:`published_length_literal` is
the published O(n^2) Python double loop. :func:`published_length` computes the same per-pair
expression ``sqrt(dx**2 + dy**2)`` with NumPy broadcasting and keeps the running maximum from 1, so it
returns the same float as the double loop (square roots are correctly rounded elementwise); it is
used where the double loop would take hours (2,000-map agreement checks). Lengths are in map pixels:
the published code's final ``* 424 / img_height`` conversion is left to :mod:`galaxy_xai.units`.

Never imported by the package: this is the reference the fast implementation is checked against.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import gaussian_filter


def published_mask(cam: np.ndarray, c_t: float, l_t: float) -> np.ndarray:
    """The published ``barlength_mask``: 0/1 int mask (H, W)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # corrcoef of < 2 pixels or a constant coordinate warns and gives NaN; NaN > c_t is False.
        warnings.simplefilter("ignore", RuntimeWarning)
        for heat_threshold in np.arange(0.5, 1.0, 0.0001):
            x, y = np.asarray(cam > heat_threshold).nonzero()
            corr = abs(np.corrcoef(x, y)[1, 0])
            if corr > c_t or len(x) < l_t:
                break
    return np.where(cam > heat_threshold, 1, 0)


def published_length_literal(cam_mask: np.ndarray) -> float:
    """The published ``barlength_calc`` double loop, in map pixels (O(n^2) Python: slow)."""
    x, y = np.where(cam_mask > 0)
    length = 1
    for i in range(len(x)):
        for j in range(len(x)):
            l = np.sqrt((x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2)  # noqa: E741 (published name)
            length = l if l > length else length
    return float(length)


def published_length(cam_mask: np.ndarray) -> float:
    """:func:`published_length_literal` with the inner pair loop broadcast in NumPy (same float)."""
    x, y = np.where(cam_mask > 0)
    length = 1
    for start in range(0, len(x), 256):
        dx, dy = x[start : start + 256, None] - x[None, :], y[start : start + 256, None] - y[None, :]
        top = np.sqrt(dx**2 + dy**2).max()
        length = top if top > length else length
    return float(length)


def published_bar_length(cam: np.ndarray, c_t: float, l_t: float, literal: bool = False) -> float:
    """Published mask then published length, in map pixels."""
    mask = published_mask(cam, c_t, l_t)
    return published_length_literal(mask) if literal else published_length(mask)


# --------------------------------------------------------------------------------------------------
# Saliency-like test maps


def bar_like_map(size: int, rng: np.random.Generator, angle_deg: float | None = None) -> np.ndarray:
    """A SmoothGrad-like bar map (size, size) in [0, 1], float64.

    An elongated Gaussian (random angle, length 15-60% of the side, axis ratio 0.15-0.5), often with a
    round bulge, plus smoothed noise of random strength, clipped at 0 and min-max normalised.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    centre = size / 2 - 0.5 + rng.normal(0, 0.03 * size, 2)
    theta = np.deg2rad(rng.uniform(0, 180) if angle_deg is None else angle_deg)
    u = (xx - centre[1]) * np.cos(theta) + (yy - centre[0]) * np.sin(theta)
    v = -(xx - centre[1]) * np.sin(theta) + (yy - centre[0]) * np.cos(theta)
    half_length = rng.uniform(0.075, 0.3) * size
    half_width = half_length * rng.uniform(0.15, 0.5)
    cam = np.exp(-0.5 * ((u / half_length) ** 2 + (v / half_width) ** 2))
    if rng.random() < 0.6:
        r2 = (xx - centre[1]) ** 2 + (yy - centre[0]) ** 2
        cam += rng.uniform(0.2, 0.9) * np.exp(-0.5 * r2 / (rng.uniform(0.3, 0.8) * half_width) ** 2)
    noise = gaussian_filter(rng.normal(size=(size, size)), rng.uniform(0.5, 2.0))
    cam += rng.uniform(0.0, 0.25) * noise / (noise.std() + 1e-12)
    cam = np.clip(cam, 0.0, None)
    return (cam - cam.min()) / (cam.max() - cam.min())


def smooth_blob_map(size: int, rng: np.random.Generator) -> np.ndarray:
    """A round or mildly elliptical smooth blob (size, size) in [0, 1], no noise: many ties in r."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    centre = size / 2 - 0.5 + rng.normal(0, 0.05 * size, 2)
    sy, sx = rng.uniform(0.08, 0.3, 2) * size
    cam = np.exp(-0.5 * (((yy - centre[0]) / sy) ** 2 + ((xx - centre[1]) / sx) ** 2))
    return (cam - cam.min()) / (cam.max() - cam.min())


def mixed_maps(n: int, size: int, seed: int) -> np.ndarray:
    """A mixed stack (n, size, size): 70% bar-like, 15% smooth blobs, 15% uniform noise.

    Every other map is rounded to float16 (the heatmap files' dtype), which creates many ties.
    """
    rng = np.random.default_rng(seed)
    maps = np.empty((n, size, size))
    for i in range(n):
        kind = rng.random()
        if kind < 0.7:
            maps[i] = bar_like_map(size, rng)
        elif kind < 0.85:
            maps[i] = smooth_blob_map(size, rng)
        else:
            maps[i] = rng.random((size, size))
        if i % 2:
            maps[i] = maps[i].astype(np.float16)
    return maps


def ideal_bar_maps(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Maps of a flat-topped bar (length 8-30 px, axis ratio 0.25, random angle) with a round bulge
    and uniform noise, as an ideal saliency map would show it, min-max scaled; and the true lengths (n,)."""
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    lengths = rng.uniform(8, 30, n)
    maps = np.empty((n, size, size))
    for i, (length, angle) in enumerate(zip(lengths, rng.uniform(0, np.pi, n), strict=True)):
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        half = length / 2
        bar = np.exp(-np.log(2) * ((np.abs(u) / half) ** 4 + (v / max(0.25 * half, 0.7)) ** 2))
        bulge = 0.6 * np.exp(-(xx**2 + yy**2) / (2 * (length / 6) ** 2))
        maps[i] = bar + bulge + 0.2 * rng.random((size, size))
    lo = maps.min(axis=(1, 2), keepdims=True)
    return (maps - lo) / (maps.max(axis=(1, 2), keepdims=True) - lo), lengths
