"""Does a map point at the bar? The true bar's ellipse at map resolution and three localisation scores.

The bar mask (synthetic sky only)
---------------------------------
truth.csv (:mod:`galaxy_xai.data.synthetic.sky`) gives each barred galaxy's ``bar_length_px424`` (the
bar's full length in 424-px image pixels: the full width at half maximum of its own, unconvolved,
elliptical Sersic profile along the major axis), ``bar_axis_ratio`` (minor / major axis of its
isophotes as seen on the image) and ``bar_angle_deg`` (position angle in [0, 180): degrees
counter-clockwise from "up" in the displayed image; the major axis points along (d_row, d_col) =
(-cos phi, -sin phi); :mod:`galaxy_xai.data.synthetic.population`). The galaxy is centred on 424-px array
position (211.5, 211.5) (0-based row, column). The bar's ellipse is therefore its half-maximum
isophote: semi-major axis ``a = length / 2``, semi-minor ``b = axis_ratio * a``, centred on the image
centre. :func:`bar_masks` marks the map pixels whose centres lie inside it.

Map pixels -> 424-px pixels (:mod:`galaxy_xai.units`, :mod:`galaxy_xai.data.images`): a map of side
``map_px`` covers the centre crop of ``crop_px`` 424-px pixels (``None``: the whole image) whose top
left corner is at ``(424 - crop_px) // 2`` (``images._crop_window``), resized with half-pixel centres
(``tf.image.resize``), so map pixel ``i`` has its centre at 424-px position
``(424 - crop_px) // 2 + (i + 0.5) crop_px / map_px - 0.5``. Verified by rendering
(``tests/test_localisation.py``): the bar-only render's half-maximum region matches the mask at full
resolution, and through the JPEG writer and the model's image loader at 64 px of the 160-px crop the
bar's light falls inside the mask.

Scores per map (all vectorised over stacks ``maps`` (n, H, W) and ``masks`` (n, H, W) bool)
-------------------------------------------------------------------------------------------
* :func:`relevance_mass_accuracy`: the share of the map's positive relevance inside the mask,
  ``sum_{p in M} R_p / sum_p R_p`` with ``R = max(0, map)`` (Arras, Osman & Samek 2022, Information
  Fusion 81, 14, "relevance mass accuracy": the relevance inside over the total positive relevance,
  as Quantus also describes it). The project's maps are non-negative, so the clip rarely matters.
* :func:`relevance_rank_accuracy`: of the ``K = |M|`` highest-ranked pixels, the fraction inside the
  mask (Arras et al. 2022, "relevance rank accuracy"). Ties at the K-th value share the remaining
  places in proportion, i.e. the expectation over random tie-breaking, so it is deterministic.
* :func:`pointing_game`: is the map's maximum inside the mask, dilated by ``tolerance_px`` map pixels
  (Zhang et al. 2018, IJCV 126, 1084, "pointing game": a hit within 15 px of the object on PASCAL
  VOC / COCO images of a few hundred pixels; the default 2 map px is the same few per cent of the
  side at 64 px). Several tied maxima score the fraction of them that hit.

Known answers (tested): a map equal to the mask scores 1 on all three; a uniform map scores the
mask's area fraction ``|M| / (H W)`` on mass and rank accuracy (and on the pointing game with no
tolerance). An empty mask or a map without positive relevance gives NaN where the score is undefined.

:func:`mean_intervals` gives each per-galaxy score's mean with its 95% percentile bootstrap interval
over galaxies (:func:`galaxy_xai.statistics.bootstrap_indices`, ``percentile_interval``); it suits the
per-map scores of :mod:`galaxy_xai.xai.faithfulness` and :mod:`galaxy_xai.xai.sanity` too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from galaxy_xai import statistics, units

IMAGE_CENTRE_PX424 = (units.IMAGE_PX - 1) / 2
"""Row and column of the galaxy's centre in 0-based 424-px array coordinates (211.5)."""

TRUTH_BAR_COLUMNS = ("bar_length_px424", "bar_axis_ratio", "bar_angle_deg")
"""truth.csv columns that define the bar's ellipse."""

MIN_SEMI_AXIS_MAP_PX = 0.75
"""Smallest semi-axis of a mask in map pixels: a bar thinner than this still covers the pixels around
the centre (an even map's four central pixel centres are 0.71 px from it), so no mask is empty."""

POINTING_TOLERANCE_PX = 2.0
"""Default pointing-game tolerance in map pixels (Zhang et al. 2018 allow 15 px on images a few hundred px a side)."""


# --- geometry ------------------------------------------------------------------------------------------
def map_pixel_centres_px424(map_px: int, crop_px: int | None) -> np.ndarray:
    """424-px coordinate of the centre of each map row (or column) index 0 .. map_px - 1: (map_px,) float.

    The centre crop starts at ``(424 - crop_px) // 2`` as the image loader's does, and the resize
    uses half-pixel centres.
    """
    if map_px < 1:
        raise ValueError(f"map_px = {map_px}: expected >= 1")
    crop = units.IMAGE_PX if crop_px is None else int(crop_px)
    if not 1 <= crop <= units.IMAGE_PX:
        raise ValueError(f"crop_px = {crop_px}: expected 1 - {units.IMAGE_PX} or None")
    top = (units.IMAGE_PX - crop) // 2
    return top + (np.arange(map_px) + 0.5) * (crop / map_px) - 0.5


def bar_masks(
    length_px424,
    axis_ratio,
    angle_deg,
    map_px: int,
    crop_px: int | None,
    pad_map_px: float = 0.0,
    min_semi_axis_map_px: float = MIN_SEMI_AXIS_MAP_PX,
) -> np.ndarray:
    """The true bars' ellipses as boolean masks at map resolution: (n, map_px, map_px) bool.

    ``length_px424`` (n,) full bar lengths in 424-px pixels, ``axis_ratio`` (n,) minor / major,
    ``angle_deg`` (n,) position angles (conventions: the module docstring). A pixel is in the mask
    when its centre lies inside the ellipse whose semi-axes, in map pixels, are
    ``max(min_semi_axis_map_px, semi-axis + pad_map_px)``; ``pad_map_px`` > 0 widens the mask, e.g.
    by the PSF's half width. A galaxy without a bar (NaN length) gets an empty mask.
    """
    length = np.atleast_1d(np.asarray(length_px424, dtype=np.float64))
    q = np.atleast_1d(np.asarray(axis_ratio, dtype=np.float64))
    phi = np.radians(np.atleast_1d(np.asarray(angle_deg, dtype=np.float64)))
    if not (length.ndim == 1 and length.shape == q.shape == phi.shape):
        raise ValueError(
            f"bar_masks: expected lengths, axis ratios and angles of one shape (n,); got "
            f"{length.shape}, {q.shape}, {phi.shape}"
        )
    barred = np.isfinite(length) & np.isfinite(q) & np.isfinite(phi)
    if np.any(barred & ((length <= 0) | (q <= 0) | (q > 1))):
        raise ValueError("bar_masks: expected lengths > 0 and axis ratios in (0, 1]")
    to_map = float(units.px424_to_map_px(1.0, map_px, crop_px))
    semi_major = np.maximum(min_semi_axis_map_px, 0.5 * length * to_map + pad_map_px)
    semi_minor = np.maximum(min_semi_axis_map_px, 0.5 * q * length * to_map + pad_map_px)
    # Offsets of the pixel centres from the galaxy centre, in map pixels.
    offset = (map_pixel_centres_px424(map_px, crop_px) - IMAGE_CENTRE_PX424) * to_map
    d_row, d_col = offset[None, :, None], offset[None, None, :]
    u_row, u_col = -np.cos(phi)[:, None, None], -np.sin(phi)[:, None, None]  # the major axis
    along = d_row * u_row + d_col * u_col
    across = d_col * u_row - d_row * u_col
    with np.errstate(invalid="ignore"):
        inside = (along / semi_major[:, None, None]) ** 2 + (across / semi_minor[:, None, None]) ** 2 <= 1.0
    return inside & barred[:, None, None]


def bar_masks_from_truth(truth: pd.DataFrame, map_px: int, crop_px: int | None, **kwargs) -> np.ndarray:
    """:func:`bar_masks` for the rows of a truth.csv table (``catalogue.read_truth``), in row order."""
    missing = [c for c in TRUTH_BAR_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"bar_masks_from_truth: truth table lacks {', '.join(missing)}")
    return bar_masks(*(truth[c].to_numpy(dtype=np.float64) for c in TRUTH_BAR_COLUMNS), map_px, crop_px, **kwargs)


# --- scores --------------------------------------------------------------------------------------------
def _stacks(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ValueError(f"expected maps and masks of one shape (n, H, W); got {maps.shape}, {masks.shape}")
    return maps.reshape(len(maps), -1), masks.reshape(len(masks), -1)


def relevance_mass_accuracy(maps, masks) -> np.ndarray:
    """Share of each map's positive relevance inside its mask (Arras et al. 2022): (n,) in [0, 1].

    ``maps`` (n, H, W) any unit (only ratios matter), ``masks`` (n, H, W) bool. NaN for an empty mask
    or a map with no positive value.
    """
    flat, inside = _stacks(maps, masks)
    relevance = np.maximum(flat, 0.0)
    total = relevance.sum(axis=1)
    within = np.where(inside, relevance, 0.0).sum(axis=1)
    ok = (total > 0) & inside.any(axis=1)
    return np.divide(within, total, out=np.full(len(flat), np.nan), where=ok)


def relevance_rank_accuracy(maps, masks) -> np.ndarray:
    """Fraction of each map's ``K = |mask|`` top-ranked pixels that lie in the mask (Arras et al. 2022): (n,).

    Pixels tied with the K-th largest value fill the places left after the strictly larger ones in
    proportion to how many of them are inside (the mean over random tie-breaks). NaN for an empty mask.
    """
    flat, inside = _stacks(maps, masks)
    n, size = flat.shape
    k = inside.sum(axis=1)
    ordered = -np.sort(-flat, axis=1)  # descending
    kth = np.take_along_axis(ordered, np.clip(k - 1, 0, size - 1)[:, None], axis=1)
    above = flat > kth
    tied = flat == kth
    n_above = above.sum(axis=1)
    hits_above = (above & inside).sum(axis=1)
    share_tied = (tied & inside).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
    hits = hits_above + (k - n_above) * share_tied
    return np.divide(hits, k, out=np.full(n, np.nan), where=k > 0)


def pointing_game(maps, masks, tolerance_px: float = POINTING_TOLERANCE_PX) -> np.ndarray:
    """Is each map's maximum inside its mask dilated by ``tolerance_px`` map pixels (Zhang et al. 2018)?

    (n,) float: 1 hit, 0 miss; with several tied maxima the fraction of them that hit. The dilation
    adds every pixel whose centre lies within ``tolerance_px`` of a mask pixel's centre. NaN for an
    empty mask.
    """
    if tolerance_px < 0:
        raise ValueError(f"pointing_game: tolerance_px = {tolerance_px}: expected >= 0")
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    _stacks(maps, masks)
    radius = int(np.floor(tolerance_px))
    if radius >= 1:
        rows, cols = np.ogrid[-radius : radius + 1, -radius : radius + 1]
        disk = (rows**2 + cols**2 <= tolerance_px**2)[None]
        target = ndimage.binary_dilation(masks, structure=disk)
    else:
        target = masks
    flat, hit_zone = maps.reshape(len(maps), -1), target.reshape(len(target), -1)
    peak = flat == flat.max(axis=1, keepdims=True)
    hits = (peak & hit_zone).sum(axis=1) / peak.sum(axis=1)
    return np.where(masks.reshape(len(masks), -1).any(axis=1), hits, np.nan)


def localisation_scores(maps, masks, tolerance_px: float = POINTING_TOLERANCE_PX) -> dict[str, np.ndarray]:
    """All three scores of each map, plus each mask's area fraction (the uniform map's score): {name: (n,)}."""
    masks = np.asarray(masks, dtype=bool)
    return {
        "mass_accuracy": relevance_mass_accuracy(maps, masks),
        "rank_accuracy": relevance_rank_accuracy(maps, masks),
        "pointing_game": pointing_game(maps, masks, tolerance_px),
        "mask_fraction": masks.mean(axis=(1, 2)),
    }


# --- intervals -----------------------------------------------------------------------------------------
def mean_intervals(
    scores: Mapping[str, np.ndarray], n_boot: int, rng: np.random.Generator
) -> dict[str, dict]:
    """Each per-galaxy score's mean and 95% percentile bootstrap interval over galaxies (``n_boot`` resamples).

    ``scores`` {name: (n,)}; non-finite entries (undefined scores) are left out first. Returns
    {name: {"mean", "ci95": [lo, hi], "n"}}; the interval is NaN with fewer than 2 finite values.
    """
    out = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        mean = float(values.mean()) if values.size else float("nan")
        if values.size >= 2:
            draws = statistics.bootstrap_apply(values.size, n_boot, rng, lambda idx, v=values: v[idx].mean(axis=1))
            interval = statistics.percentile_interval(draws)
        else:
            interval = (float("nan"), float("nan"))
        out[name] = {"mean": mean, "ci95": [interval[0], interval[1]], "n": int(values.size)}
    return out
