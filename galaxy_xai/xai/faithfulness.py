"""Is a map faithful to the model? Deletion and insertion curves and their areas (Petsiuk et al. 2018).

Petsiuk, Das & Saenko (2018, BMVC, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", Sec. 4.1): rank the pixels by the map, then

* **deletion**: starting from the image, replace the top-ranked pixels by a baseline, a fraction
  ``j / steps`` of all pixels at step ``j``, and follow the model's score; a faithful map makes it
  fall fast, so the area under the curve is *small*;
* **insertion**: starting from the baseline, put the image's top-ranked pixels back; a faithful map
  makes the score rise fast, so the area is *large*.

Petsiuk et al. delete to a constant (zero) image and insert into a blurred copy. Here the baseline is
an argument of the same shape as the images: :func:`blurred_baseline` (a Gaussian blur) or
:func:`sky_baseline` (each image's per-channel median of its border pixels: the sky level, i.e. the
galaxy removed without a black hole that no training image has).

Shapes and units: images (n, H, W, C) in the model's input unit (float32 in [0, 1] here), maps
(n, H, W) of any unit (only their order matters), ``score_fn`` a batched callable images (b, H, W, C)
-> scores (b,) (e.g. the bar answer's pre-sigmoid logit or its vote fraction). Curves are (n, steps
+ 1): the score after 0, 1/steps, ..., 1 of the pixels were deleted (inserted); both ends are the
same for every map (the image and the baseline). Areas are trapezoids over the x-axis normalised to
[0, 1], in the score's unit. Pixels of equal relevance are ordered by a seeded random permutation,
so a constant map gives a random order rather than a raster scan.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

MODES = ("deletion", "insertion")

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""images (b, H, W, C) float32 -> scores (b,)."""


def blurred_baseline(images: np.ndarray, sigma_px: float = 5.0) -> np.ndarray:
    """Each image blurred by a Gaussian of ``sigma_px`` pixels (per channel, reflecting edges): same shape, float32."""
    images = np.asarray(images, dtype=np.float32)
    _check_images(images)
    return ndimage.gaussian_filter(images, sigma=(0, sigma_px, sigma_px, 0), mode="reflect").astype(np.float32)


def sky_baseline(images: np.ndarray, border_px: int = 4) -> np.ndarray:
    """Each image replaced by its sky level: the per-channel median of its ``border_px``-wide border.

    Same shape as ``images`` (n, H, W, C), float32, constant per image and channel.
    """
    images = np.asarray(images, dtype=np.float32)
    _check_images(images)
    height, width = images.shape[1:3]
    if not 1 <= border_px <= min(height, width) // 2:
        raise ValueError(f"sky_baseline: border_px = {border_px}: expected 1 - {min(height, width) // 2}")
    edge = np.ones((height, width), bool)
    edge[border_px:-border_px, border_px:-border_px] = False
    level = np.median(images[:, edge, :], axis=1)  # (n, C)
    return np.broadcast_to(level[:, None, None, :], images.shape).astype(np.float32)


def _check_images(images: np.ndarray) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected images (n, H, W, C); got shape {images.shape}")


def pixel_ranks(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each pixel's rank in its map, 0 for the most relevant: (n, H, W) int64.

    Ties (equal values) are broken by a random permutation drawn from ``seed``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"expected maps (n, H, W); got shape {maps.shape}")
    n = len(maps)
    flat = maps.reshape(n, -1)
    tie_break = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((tie_break, -flat), axis=-1)  # most relevant first
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(n, axis=0), axis=1)
    return ranks.reshape(maps.shape)


def perturbation_curves(
    images: np.ndarray,
    maps: np.ndarray,
    score_fn: ScoreFn,
    baseline: np.ndarray,
    mode: str = "deletion",
    steps: int = 16,
    batch_size: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Deletion or insertion curves of each map (Petsiuk et al. 2018): (n, steps + 1) float64 scores.

    At step ``j`` the ``round(j H W / steps)`` top-ranked pixels (all channels) of image ``i`` come
    from ``baseline`` (deletion) or from the image, the rest from the other (insertion).
    ``score_fn`` is called on batches of at most ``batch_size`` perturbed images.
    """
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {', '.join(MODES)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps = {steps}, batch_size = {batch_size}: expected >= 1")
    images = np.asarray(images, dtype=np.float32)
    baseline = np.asarray(baseline, dtype=np.float32)
    _check_images(images)
    if baseline.shape != images.shape or np.shape(maps) != images.shape[:3]:
        raise ValueError(
            f"expected images (n, H, W, C), baseline of the same shape and maps (n, H, W); got "
            f"{images.shape}, {baseline.shape}, {np.shape(maps)}"
        )
    ranks = pixel_ranks(maps, seed)
    n, n_pixels = len(images), ranks[0].size
    counts = np.rint(np.arange(steps + 1) * n_pixels / steps).astype(np.int64)
    first, second = (baseline, images) if mode == "deletion" else (images, baseline)
    # Every (galaxy, step) pair, galaxy-major; scored batch_size at a time.
    pairs = np.stack(np.meshgrid(np.arange(n), np.arange(steps + 1), indexing="ij"), axis=-1).reshape(-1, 2)
    scores = np.empty(len(pairs))
    for start in range(0, len(pairs), batch_size):
        galaxy, step = pairs[start : start + batch_size].T
        taken = (ranks[galaxy] < counts[step][:, None, None])[..., None]
        batch = np.where(taken, first[galaxy], second[galaxy])
        out = np.asarray(score_fn(batch), dtype=np.float64).reshape(-1)
        if out.shape != (len(galaxy),):
            raise ValueError(f"score_fn returned shape {out.shape} for {len(galaxy)} images: expected ({len(galaxy)},)")
        scores[start : start + len(galaxy)] = out
    return scores.reshape(n, steps + 1)


def curve_areas(curves: np.ndarray) -> np.ndarray:
    """Trapezoidal area under each curve (n, k + 1) over an x-axis from 0 to 1: (n,), in the score's unit."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise ValueError(f"expected curves (n, k + 1) with k >= 1; got shape {curves.shape}")
    return np.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), axis=1)


def deletion_insertion(
    images: np.ndarray,
    maps: np.ndarray,
    score_fn: ScoreFn,
    deletion_baseline: np.ndarray,
    insertion_baseline: np.ndarray,
    steps: int = 16,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Both curves and their areas: {"deletion", "insertion": (n, steps + 1), "deletion_auc", "insertion_auc": (n,)}."""
    out = {}
    for mode, baseline in (("deletion", deletion_baseline), ("insertion", insertion_baseline)):
        out[mode] = perturbation_curves(images, maps, score_fn, baseline, mode, steps, batch_size, seed)
        out[f"{mode}_auc"] = curve_areas(out[mode])
    return out
