"""Algorithm 1 of Bhambra et al. (2022): isolate the bar in a saliency map and measure its length.

The published rule (``linearity="abs_pearson"``, the default):

* scan the thresholds ``T_h`` in :data:`THRESHOLDS` = ``numpy.arange(0.5, 1.0, 0.0001)`` in order;
  the candidate pixels at ``T_h`` are those with value ``> T_h``;
* stop at the first ``T_h`` where the absolute Pearson correlation of the candidates' row and column
  indices exceeds ``corr_threshold`` (T_c) or fewer than ``len_threshold`` (T_l) candidates remain; a
  correlation of fewer than two pixels or of a constant coordinate counts as not exceeding (the
  published code gets NaN there, and ``NaN > T_c`` is false); if none stops, the last ``T_h`` is used;
* the bar is the candidate set at that ``T_h``; its length is the largest Euclidean distance between
  two of its pixel centres, and at least 1.0 (the published code starts the maximum from 1).

The published code re-thresholds the whole map 5,000 times and measures with an O(n^2) Python loop.
Here the same answer comes from shared work done once per map:

* only pixels above 0.5 can ever be candidates; they are sorted once by decreasing value, so the
  candidate set at any ``T_h`` is a prefix of that order whose size is a ``searchsorted`` count
  (ties are never split: equal values are both above a threshold or both not);
* the stopping rule depends on the candidate set only through its size, so only the distinct
  counts along the scan matter; prefix sums of row, col, row^2, col^2 and row*col give the exact
  integer moments of every prefix, hence the linearity of every count in O(1);
* near the threshold (within 1e-9) the correlation is recomputed with ``numpy.corrcoef`` on the
  candidates in the published order, so a rounding difference cannot flip the decision;
* the largest distance is attained between convex-hull vertices, and every hull vertex of a pixel set
  is the leftmost or rightmost pixel of its row *and* the topmost or bottommost of its column; the
  distance is maximised over those few pixels in exact integer arithmetic.

``linearity="elongation"`` replaces |r| by ``1 - lambda_min / lambda_max`` of the candidates'
coordinate covariance: rotation-invariant, whereas |r| is ~0 for a bar along an image axis.

Beyond the paper, a measurement *setting* (:class:`Choice`) also names:

* the estimator (:data:`ESTIMATORS`): ``algorithm1`` as above, or ``fourier``, the radius where the
  map's m = 2 Fourier amplitude falls below a fraction of its peak (:func:`fourier_map_lengths`,
  after zeroing the map below a floor), which one stray pixel barely moves;
* the mask (:data:`MASKS`): ``none`` (the paper), or ``r90``, the map zeroed outside the galaxy's
  Petrosian R90 (20 px of a 64-px map of the 160-px crop) before renormalising, so a neighbour or a
  star in a corner cannot set the length;
* the source: a model's map, :data:`MEAN_MAP`, :data:`MEAN_LENGTH`, or the image-only control
  :data:`IMAGE`, the grey input with its sky subtracted (:func:`image_maps`).

:func:`setting_lengths` measures any list of settings, sharing each measured map among them; the
paper's configuration is estimators ``[algorithm1]`` and masks ``[none]``, whose lengths are
exactly :func:`method_lengths`'.

Shapes: one map is ``(H, W)``; a stack is ``(n, H, W)``; a grid result is ``(n_Tc, n_Tl)`` per map.
Lengths are in pixels of the map (see :mod:`galaxy_xai.units` for 424-px pixels and kpc).
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from galaxy_xai import profiles, units
from galaxy_xai.config import ESTIMATORS, LINEARITIES, MASKS
from galaxy_xai.maps import normalise_maps, within_radius
from galaxy_xai.units import IMAGE_PX

THRESHOLDS = np.arange(0.5, 1.0, 0.0001)
"""The published threshold scan T_h (5,000 values from 0.5 to 0.9999)."""

MEAN_MAP = "mean_map"
"""Method: Algorithm 1 on the element-wise mean of the models' maps."""

MEAN_LENGTH = "mean_length"
"""Method: the mean of the lengths measured on each model's map."""

PAPER_MAP_PX = 224
"""Map side for which the paper's T_l grid (10-50 pixels) was chosen (maps of the whole image)."""

_RECHECK_TOL = 1e-9
"""|r| this close to T_c is recomputed exactly as the published code does (prefix-sum r is ~1e-15 off)."""

_MAX_SIDE = 1024
"""Largest map side for which the int64 moment sums are exact."""


# --------------------------------------------------------------------------------------------------
# Input checks


def _check_linearity(linearity: str) -> None:
    if linearity not in LINEARITIES:
        raise ValueError(f"linearity = {linearity!r}: expected one of {', '.join(LINEARITIES)}")


def _as_map(saliency_map: np.ndarray, what: str = "saliency_map") -> np.ndarray:
    """The map as float64 (exact for float16/float32 input), after checking shape and values."""
    arr = np.asarray(saliency_map)
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D map (H, W), got shape {arr.shape}")
    if arr.shape[0] > _MAX_SIDE or arr.shape[1] > _MAX_SIDE or 0 in arr.shape:
        raise ValueError(f"{what}: expected 1 to {_MAX_SIDE} pixels per side, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or infinite values; expected finite saliency values")
    return arr


def _as_stack(saliency_maps: np.ndarray) -> np.ndarray:
    arr = np.asarray(saliency_maps)
    if arr.ndim != 3:
        raise ValueError(f"saliency_maps: expected a stack of maps (n, H, W), got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------------
# The shared work of one map


@dataclass(frozen=True)
class _Scan:
    """What every (T_c, T_l) pair of one map shares.

    ``flat_desc``: flat indices of the pixels above 0.5, by decreasing value, (m,).
    ``counts``: the distinct candidate counts met along the threshold scan, in scan order
    (decreasing), (d,); the candidate set of count c is ``flat_desc[:c]``.
    ``a, b, c_``: n^2 times the covariance of (row, col) of each count's candidates: var(row),
    cov(row, col), var(col), exact integers as int64, (d,).
    """

    width: int
    flat_desc: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c_: np.ndarray


def _scan(map64: np.ndarray) -> _Scan:
    flat = map64.ravel()
    above = np.flatnonzero(flat > THRESHOLDS[0])
    values = flat[above]
    order = np.argsort(-values, kind="stable")
    flat_desc = above[order]
    ascending = values[order][::-1]
    count_per_threshold = ascending.size - np.searchsorted(ascending, THRESHOLDS, side="right")
    changes = np.flatnonzero(count_per_threshold[1:] != count_per_threshold[:-1]) + 1
    counts = count_per_threshold[np.concatenate(([0], changes))]
    rows, cols = np.divmod(flat_desc, map64.shape[1])

    def prefix(v: np.ndarray) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(v, dtype=np.int64)))[counts]

    sr, sc = prefix(rows), prefix(cols)
    n = counts.astype(np.int64)
    a = n * prefix(rows * rows) - sr * sr
    b = n * prefix(rows * cols) - sr * sc
    c_ = n * prefix(cols * cols) - sc * sc
    return _Scan(map64.shape[1], flat_desc, rows, cols, counts, a, b, c_)


def _linearity(scan: _Scan, linearity: str) -> tuple[np.ndarray, np.ndarray]:
    """(value, defined) per distinct count, (d,) each; undefined values never exceed T_c."""
    a, b, c = (v.astype(np.float64) for v in (scan.a, scan.b, scan.c_))
    if linearity == "abs_pearson":
        defined = (scan.counts >= 2) & (scan.a > 0) & (scan.c_ > 0)
        denom = np.sqrt(a) * np.sqrt(c)
        value = np.divide(np.abs(b), denom, out=np.zeros_like(a), where=defined)
        return np.minimum(value, 1.0), defined
    half_trace = 0.5 * (a + c)
    lam_max = half_trace + np.hypot(0.5 * (a - c), b)
    defined = (scan.counts >= 2) & (lam_max > 0)
    lam_min = np.clip(2.0 * half_trace - lam_max, 0.0, None)
    value = 1.0 - np.divide(lam_min, lam_max, out=np.ones_like(a), where=defined)
    return value, defined


def _published_abs_r(scan: _Scan, count: int) -> float:
    """|r| of the top ``count`` pixels exactly as the published code computes it (row-major order)."""
    rows, cols = np.divmod(np.sort(scan.flat_desc[:count]), scan.width)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(abs(np.corrcoef(rows, cols)[1, 0]))


def _stop_counts(
    scan: _Scan, corr_thresholds: np.ndarray, len_thresholds: np.ndarray, linearity: str
) -> np.ndarray:
    """Candidate count where the scan stops, for every (T_c, T_l) pair: int (n_Tc, n_Tl)."""
    value, defined = _linearity(scan, linearity)
    tc = corr_thresholds[:, None]
    exceeds = defined & (value > tc)  # (n_Tc, d)
    if linearity == "abs_pearson":
        near = defined & (np.abs(value - tc) <= _RECHECK_TOL)
        for j in np.flatnonzero(near.any(axis=0)):
            exact = _published_abs_r(scan, int(scan.counts[j]))
            exceeds[near[:, j], j] = exact > corr_thresholds[near[:, j]]
    stops = exceeds[:, None, :] | (scan.counts[None, None, :] < len_thresholds[None, :, None])
    first = np.argmax(stops, axis=-1)
    return np.where(stops.any(axis=-1), scan.counts[first], scan.counts[-1])


# --------------------------------------------------------------------------------------------------
# The largest distance


def _extreme_flags(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """True for the points with the smallest or largest ``minor`` among those sharing ``major``.

    ``major``, ``minor``: non-negative integer coordinates, (k,).
    """
    size = int(major.max()) + 1
    lowest = np.full(size, np.iinfo(np.int64).max)
    highest = np.full(size, -1)
    np.minimum.at(lowest, major, minor)
    np.maximum.at(highest, major, minor)
    return (minor == lowest[major]) | (minor == highest[major])


def farthest_pair(rows: np.ndarray, cols: np.ndarray) -> tuple[tuple[int, int], tuple[int, int], int]:
    """The two pixel centres farthest apart: ((row0, col0), (row1, col1), squared distance in px^2).

    ``rows``, ``cols``: integer pixel indices, (k,) with k >= 1. Exact: the maximum squared distance
    is found in integer arithmetic among the pixels that can be convex-hull vertices (extreme in
    their row and in their column).
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("farthest_pair: expected at least one pixel")
    r0, c0 = rows.min(), cols.min()
    shifted_r, shifted_c = rows - r0, cols - c0  # distances are shift-invariant; indices >= 0
    keep = _extreme_flags(shifted_r, shifted_c) & _extreme_flags(shifted_c, shifted_r)
    r, c = rows[keep], cols[keep]
    best, pair = -1, (0, 0)
    for start in range(0, r.size, 512):  # bounds memory on degenerate sets; usually one pass
        dr = r[start : start + 512, None] - r[None, :]
        dc = c[start : start + 512, None] - c[None, :]
        d2 = dr * dr + dc * dc
        flat = int(d2.argmax())
        if int(d2.flat[flat]) > best:
            best = int(d2.flat[flat])
            pair = (start + flat // r.size, flat % r.size)
    i, j = pair
    return (int(r[i]), int(c[i])), (int(r[j]), int(c[j])), best


def max_pixel_distance(rows: np.ndarray, cols: np.ndarray) -> float:
    """Largest Euclidean distance between two pixel centres, and at least 1.0; in pixels.

    ``rows``, ``cols``: integer pixel indices, (k,). One square root of the exact integer maximum of
    :func:`farthest_pair`, which equals the published maximum of square roots.
    """
    if np.size(rows) < 2:
        return 1.0
    return max(1.0, float(np.sqrt(np.float64(farthest_pair(rows, cols)[2]))))


# --------------------------------------------------------------------------------------------------
# Public API


def _grid_arrays(corr_thresholds, len_thresholds) -> tuple[np.ndarray, np.ndarray]:
    tc = np.atleast_1d(np.asarray(corr_thresholds, dtype=np.float64))
    tl = np.atleast_1d(np.asarray(len_thresholds, dtype=np.float64))
    if tc.ndim != 1 or tl.ndim != 1 or not tc.size or not tl.size:
        raise ValueError("corr_thresholds and len_thresholds: expected non-empty 1-D sequences")
    if not (np.isfinite(tc).all() and np.isfinite(tl).all()):
        raise ValueError("corr_thresholds and len_thresholds: expected finite numbers")
    return tc, tl


def _mask(scan: _Scan, shape: tuple[int, int], count: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask.flat[scan.flat_desc[:count]] = True
    return mask


def isolate_bar(
    saliency_map: np.ndarray, corr_threshold: float, len_threshold: float, linearity: str = "abs_pearson"
) -> np.ndarray:
    """Boolean mask (H, W) of the bar isolated by Algorithm 1 in ``saliency_map`` (H, W).

    ``corr_threshold``: T_c (dimensionless); ``len_threshold``: T_l, a pixel count of this map.
    """
    _check_linearity(linearity)
    map64 = _as_map(saliency_map)
    scan = _scan(map64)
    tc, tl = _grid_arrays(corr_threshold, len_threshold)
    return _mask(scan, map64.shape, int(_stop_counts(scan, tc, tl, linearity)[0, 0]))


def bar_length_px(
    saliency_map: np.ndarray, corr_threshold: float, len_threshold: float, linearity: str = "abs_pearson"
) -> float:
    """Length in map pixels of the bar Algorithm 1 isolates in ``saliency_map`` (H, W)."""
    return float(bar_length_grid(saliency_map, [corr_threshold], [len_threshold], linearity)[0, 0])


def _lengths_of_scan(scan: _Scan, tc: np.ndarray, tl: np.ndarray, linearity: str) -> np.ndarray:
    stop = _stop_counts(scan, tc, tl, linearity)
    unique, inverse = np.unique(stop, return_inverse=True)
    lengths = np.array([max_pixel_distance(scan.rows[:k], scan.cols[:k]) for k in unique])
    return lengths[inverse].reshape(stop.shape)


def bar_length_grid(
    saliency_map: np.ndarray,
    corr_thresholds: Sequence[float],
    len_thresholds: Sequence[float],
    linearity: str = "abs_pearson",
) -> np.ndarray:
    """Bar length in map pixels for every (T_c, T_l) pair on one map: (n_Tc, n_Tl).

    ``saliency_map``: (H, W). The sort, the moments and the distances are shared by all pairs;
    element ``[i, j]`` equals ``bar_length_px(saliency_map, corr_thresholds[i], len_thresholds[j])``.
    """
    _check_linearity(linearity)
    tc, tl = _grid_arrays(corr_thresholds, len_thresholds)
    return _lengths_of_scan(_scan(_as_map(saliency_map)), tc, tl, linearity)


def bar_lengths_grid(
    saliency_maps: np.ndarray,
    corr_thresholds: Sequence[float],
    len_thresholds: Sequence[float],
    linearity: str = "abs_pearson",
) -> np.ndarray:
    """:func:`bar_length_grid` for a stack of maps (n, H, W): lengths in map pixels (n, n_Tc, n_Tl)."""
    _check_linearity(linearity)
    maps = _as_stack(saliency_maps)
    tc, tl = _grid_arrays(corr_thresholds, len_thresholds)
    out = np.empty((maps.shape[0], tc.size, tl.size))
    for i, one in enumerate(maps):
        out[i] = _lengths_of_scan(_scan(_as_map(one, f"saliency_maps[{i}]")), tc, tl, linearity)
    return out


def scale_len_threshold(len_threshold_224: float, map_px: int, crop_px: int | None = None) -> int:
    """T_l for our maps from the paper's value for its 224-px maps of the whole 424-px image.

    T_l is a number of pixels, i.e. an area on the sky, so it scales with the area of a map pixel:
    the paper's pixel spans 424 / 224 image pixels, ours ``crop_px / map_px`` (``crop_px`` in 424-px
    pixels, None for the whole image). Rounded, and at least 2 (below two pixels there is no
    correlation to test and no length to measure). For the default 64-px maps of a 160-px crop the
    factor is (64 / 224 x 424 / 160)^2 = 0.57: T_l = 10 -> 6 px.
    """
    crop = IMAGE_PX if crop_px is None else crop_px
    if map_px < 1 or len_threshold_224 < 0 or not 0 < crop <= IMAGE_PX:
        raise ValueError(
            f"scale_len_threshold: expected map_px >= 1, T_l >= 0 and 0 < crop_px <= {IMAGE_PX}, "
            f"got {map_px}, {len_threshold_224}, {crop_px}"
        )
    pixel_area = (map_px / PAPER_MAP_PX * IMAGE_PX / crop) ** 2
    return max(2, round(len_threshold_224 * pixel_area))


# --------------------------------------------------------------------------------------------------
# From stored maps to the maps the estimators measure: sources, X_input and the R90 mask

IMAGE = "image"
"""Source of the image-only control: the grey-scale model input, sky-subtracted, with no saliency."""

ALGORITHM1, FOURIER = ESTIMATORS
NO_MASK, R90_MASK = MASKS

NO_BAR_LENGTH_PX = 1.0
"""Length given to a map with no m = 2 signal at all (a constant map): Algorithm 1's floor."""


def maps_to_measure(maps: np.ndarray, grey: np.ndarray, x_input: bool, radius_px: float | None = None) -> np.ndarray:
    """The maps an estimator is run on: float32 (n, H, W) in [0, 1].

    ``maps``: saliency (n, H, W); ``grey``: the grey-scale model input (n, H, W) in [0, 1]. With
    ``x_input`` the map is multiplied by the input (the paper's X_input); with ``radius_px`` (map
    pixels, e.g. the galaxy's R90) everything outside that circle is zeroed, so a neighbour or a star
    in a corner cannot set the length. Every measured map is then min-max renormalised so the
    0.5-1.0 threshold scan means the same for every method: a no-op for stored maps already spanning
    [0, 1]; the published code did not rescale the averaged map or the product, whose maxima can fall
    well below 1.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if x_input:
        maps = maps * np.asarray(grey, dtype=np.float32)
    if radius_px is not None:
        maps = np.where(within_radius(maps.shape[-2:], radius_px), maps, np.float32(0.0))
    return normalise_maps(maps)


def image_maps(grey: np.ndarray) -> np.ndarray:
    """The image-only source: each grey-scale input (n, H, W) minus its sky (the median of its
    border pixels), clipped at 0 so it weighs pixels as a saliency map does; float32 (n, H, W)."""
    return profiles.subtract_sky(grey, clip=True).astype(np.float32)


def fourier_map_lengths(maps: np.ndarray, fractions: Sequence[float], floor: float = 0.0) -> np.ndarray:
    """The ``fourier`` estimator: full lengths in map pixels (n, n_fractions) where the m = 2
    amplitude of each map (n, H, W) in [0, 1] falls below each fraction of its peak
    (:func:`galaxy_xai.profiles.fourier_lengths`).

    ``floor`` (a fraction of the map's maximum, 1) is subtracted first and negatives set to 0: the
    faint speckle of a saliency map fills the outer annuli, where its m = 2 amplitude stays as high as
    the bar's and the length runs to the edge; above a floor an annulus beyond the bar is empty. A map
    with no m = 2 signal gets :data:`NO_BAR_LENGTH_PX`, as Algorithm 1 gives a map with no bar.
    """
    if not 0 <= floor < 1:
        raise ValueError(f"floor = {floor}: expected a fraction of the map's maximum in [0, 1)")
    above = np.clip(np.asarray(maps, dtype=np.float64) - floor, 0.0, None) if floor else maps
    lengths = profiles.fourier_lengths(above, fractions)
    return np.where(np.isnan(lengths), NO_BAR_LENGTH_PX, lengths)


def method_names(models: Sequence[str]) -> list[str]:
    """The grid search's saliency methods: each model, then :data:`MEAN_MAP` and :data:`MEAN_LENGTH`."""
    return [*models, MEAN_MAP, MEAN_LENGTH]


def source_names(models: Sequence[str]) -> list[str]:
    """Every source a setting can measure: the saliency methods, then the :data:`IMAGE` control."""
    return [*method_names(models), IMAGE]


# --------------------------------------------------------------------------------------------------
# Measurement settings and the lengths of many settings at once


NOT_APPLICABLE = float("nan")
"""A parameter of a setting that its estimator does not use. One object: settings compare equal
field by field, and NaN equals only itself."""


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and np.isnan(value)


@dataclass(frozen=True)
class Choice:
    """One measurement setting (the grid search's choice is one): the source, X_input, the estimator
    with its parameters, and the mask.

    ``method``: the source, a model, :data:`MEAN_MAP`, :data:`MEAN_LENGTH` or :data:`IMAGE` (never
    multiplied by the input: ``x_input`` is False); ``estimator`` one of :data:`ESTIMATORS`;
    ``mask`` one of :data:`MASKS`. Parameters that do not apply are NaN: ``corr_threshold`` (T_c)
    and ``len_threshold`` (T_l, in pixels of the paper's 224-px maps) are Algorithm 1's,
    ``fraction`` and ``floor`` the Fourier amplitude rule's (:func:`fourier_map_lengths`). ValueError
    on anything else.
    """

    method: str
    x_input: bool
    corr_threshold: float = NOT_APPLICABLE
    len_threshold: float = NOT_APPLICABLE
    estimator: str = ALGORITHM1
    mask: str = NO_MASK
    fraction: float = NOT_APPLICABLE
    floor: float = NOT_APPLICABLE

    def __post_init__(self) -> None:
        for name in ("corr_threshold", "len_threshold", "fraction", "floor"):
            value = float(getattr(self, name))
            object.__setattr__(self, name, NOT_APPLICABLE if np.isnan(value) else value)
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator = {self.estimator!r}: expected one of {', '.join(ESTIMATORS)}")
        if self.mask not in MASKS:
            raise ValueError(f"mask = {self.mask!r}: expected one of {', '.join(MASKS)}")
        if self.method == IMAGE and self.x_input:
            raise ValueError("source image with x_input = true: the image is never multiplied by itself")
        algorithm1 = self.estimator == ALGORITHM1
        thresholds = (self.corr_threshold, self.len_threshold)
        fourier = (self.fraction, self.floor)
        if algorithm1 and not (
            all(np.isfinite(thresholds)) and self.len_threshold >= 0 and all(_is_nan(f) for f in fourier)
        ):
            raise ValueError(
                f"{self.estimator}: expected finite corr_threshold and len_threshold >= 0, fraction and floor NaN, "
                f"got {self.corr_threshold}, {self.len_threshold}, {self.fraction}, {self.floor}"
            )
        if not algorithm1 and not (0 < self.fraction < 1 and 0 <= self.floor < 1 and all(_is_nan(t) for t in thresholds)):
            raise ValueError(
                f"{self.estimator}: expected a fraction in (0, 1), a floor in [0, 1), corr_threshold and "
                f"len_threshold NaN, got {self.fraction}, {self.floor}, {self.corr_threshold}, {self.len_threshold}"
            )

    def len_threshold_px(self, map_px: int, crop_px: int | None) -> int | None:
        """T_l in pixels of this map (:func:`scale_len_threshold`); None for the Fourier estimator."""
        if self.estimator != ALGORITHM1:
            return None
        return scale_len_threshold(self.len_threshold, map_px, crop_px)

    def radius_px(self, map_px: int, crop_px: int | None) -> float | None:
        """Radius in map pixels outside which the map is zeroed (the galaxy's R90), or None."""
        return units.r90_map_px(map_px, crop_px) if self.mask == R90_MASK else None

    def models_needed(self, models: Sequence[str]) -> list[str]:
        """The models whose files this setting reads: its model, all of them for the mean methods,
        the first for :data:`IMAGE` (the grey input is stored in every file)."""
        if self.method == IMAGE:
            return list(models[:1])
        return [self.method] if self.method in models else list(models)

    def record(self, map_px: int, crop_px: int | None) -> dict:
        """The setting as a flat dict (the fields, then ``len_threshold_px``; NaN where it does not apply)."""
        len_px = self.len_threshold_px(map_px, crop_px)
        return {**asdict(self), "len_threshold_px": NOT_APPLICABLE if len_px is None else len_px}

    @classmethod
    def from_record(cls, record: Mapping) -> Choice:
        """A setting from a dict with the fields of :class:`Choice` (extra keys ignored; missing
        ``estimator`` / ``mask`` are the paper's; missing or null parameters are NaN, except a
        Fourier setting's missing floor, 0)."""

        def number(key: str) -> float:
            value = record.get(key)
            return NOT_APPLICABLE if value is None else float(value)

        return cls(
            str(record["method"]),
            bool(record["x_input"]),
            number("corr_threshold"),
            number("len_threshold"),
            str(record.get("estimator", ALGORITHM1)),
            str(record.get("mask", NO_MASK)),
            number("fraction"),
            number("floor") if record.get("floor") is not None or record.get("estimator") != FOURIER else 0.0,
        )


def grid_settings(
    methods: Sequence[str],
    estimators: Sequence[str],
    x_inputs: Sequence[bool],
    masks: Sequence[str],
    corr_thresholds: Sequence[float],
    len_thresholds: Sequence[float],
    fractions: Sequence[float],
    floors: Sequence[float] = (0.0,),
) -> list[Choice]:
    """Every setting of the grid search, in table order: method, estimator, X_input, mask, then T_c
    and T_l (T_l fastest) or floor and fraction (fraction fastest). :data:`IMAGE` is measured without
    X_input only."""
    out = []
    for method, estimator in itertools.product(methods, estimators):
        xs = [False] if method == IMAGE else list(dict.fromkeys(bool(x) for x in x_inputs))
        for x_input, mask in itertools.product(xs, masks):
            if estimator == ALGORITHM1:
                out += [
                    Choice(method, x_input, float(tc), float(tl), estimator, mask)
                    for tc, tl in itertools.product(corr_thresholds, len_thresholds)
                ]
            else:
                out += [
                    Choice(method, x_input, estimator=estimator, mask=mask, fraction=float(f), floor=float(floor))
                    for floor, f in itertools.product(floors, fractions)
                ]
    return out


@dataclass(frozen=True)
class _Group:
    """Settings that share a source, an estimator, X_input and a mask, so one measured map serves
    all: their parameters form one grid. Lengths of a group: (n, n_Tc, n_Tl) over
    ``corr_thresholds`` x ``len_thresholds_px`` for Algorithm 1, (n, n_floors, n_fractions) over
    ``floors`` x ``fractions`` for Fourier."""

    method: str
    estimator: str
    x_input: bool
    mask: str
    corr_thresholds: tuple[float, ...] = ()
    len_thresholds_px: tuple[float, ...] = ()
    fractions: tuple[float, ...] = ()
    floors: tuple[float, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        if self.estimator == ALGORITHM1:
            return (len(self.corr_thresholds), len(self.len_thresholds_px))
        return (len(self.floors), len(self.fractions))


def _estimate(measured: np.ndarray, group: _Group, linearity: str) -> np.ndarray:
    if group.estimator == ALGORITHM1:
        return bar_lengths_grid(measured, group.corr_thresholds, group.len_thresholds_px, linearity)
    return np.stack([fourier_map_lengths(measured, group.fractions, floor) for floor in group.floors], axis=1)


def _group_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    groups: Sequence[_Group],
    radius_px: Mapping[str, float | None],
    linearity: str,
    chunk_size: int,
    progress: bool,
) -> dict[_Group, np.ndarray]:
    """Lengths in map pixels of every group, {group: (n, *group.shape)}.

    Galaxies are processed in chunks of ``chunk_size`` so memory stays small at 224 px. Within a
    chunk each measured map (source, X_input, mask) is made once and each model's lengths are
    estimated once, whether a model's own group or :data:`MEAN_LENGTH` asks for them.
    """
    _check_linearity(linearity)
    models = list(model_maps)
    if not models and any(g.method != IMAGE for g in groups):
        raise ValueError("model_maps: expected at least one model (only the image source needs none)")
    grey = np.asarray(grey)
    for name in models:
        if model_maps[name].shape != grey.shape:
            raise ValueError(f"maps of {name}: shape {model_maps[name].shape}, expected {grey.shape} like grey")
    unknown = sorted({g.method for g in groups} - set(source_names(models)))
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; expected among {source_names(models)}")
    every_model = any(g.method in (MEAN_MAP, MEAN_LENGTH) for g in groups)
    loaded = models if every_model else [m for m in models if m in {g.method for g in groups}]
    n = grey.shape[0]
    out = {g: np.empty((n, *g.shape)) for g in groups}
    for start in tqdm(range(0, n, chunk_size), desc="measuring", unit="chunk", disable=not progress):
        rows = slice(start, start + chunk_size)
        chunk = {name: np.asarray(model_maps[name][rows], dtype=np.float32) for name in loaded}
        lengths = _chunk_lengths(chunk, np.asarray(grey[rows], dtype=np.float32), models, groups, radius_px, linearity)
        for group in groups:
            out[group][rows] = lengths[group]
    return out


def _chunk_lengths(
    chunk: Mapping[str, np.ndarray],
    grey: np.ndarray,
    models: Sequence[str],
    groups: Sequence[_Group],
    radius_px: Mapping[str, float | None],
    linearity: str,
) -> dict[_Group, np.ndarray]:
    """:func:`_group_lengths` of one chunk of galaxies: ``chunk`` {model: (c, H, W)}, ``grey`` (c, H, W)."""
    measured: dict[tuple, np.ndarray] = {}
    estimated: dict[_Group, np.ndarray] = {}

    def raw(source: str) -> np.ndarray:
        if source == MEAN_MAP:
            return np.mean([chunk[m] for m in models], axis=0)
        return image_maps(grey) if source == IMAGE else chunk[source]

    def lengths(group: _Group, source: str) -> np.ndarray:
        key = replace(group, method=source)
        if key not in estimated:
            view = (source, group.x_input, group.mask)
            if view not in measured:
                measured[view] = maps_to_measure(raw(source), grey, group.x_input, radius_px[group.mask])
            estimated[key] = _estimate(measured[view], group, linearity)
        return estimated[key]

    return {
        group: np.mean([lengths(group, s) for s in (models if group.method == MEAN_LENGTH else [group.method])], axis=0)
        for group in groups
    }


def _radii(map_px: int, crop_px: int | None) -> dict[str, float | None]:
    return {NO_MASK: None, R90_MASK: units.r90_map_px(map_px, crop_px)}


def setting_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    settings: Sequence[Choice],
    crop_px: int | None,
    linearity: str = "abs_pearson",
    chunk_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Lengths in map pixels of the galaxies for each setting: (n, S), column s for ``settings[s]``.

    ``model_maps``: {model: (n, H, W)}, the same galaxies in the same order for every model;
    ``grey``: (n, H, W) model inputs; ``crop_px``: the crop (424-px pixels) the maps were made from,
    which sets T_l and R90 in map pixels. :data:`MEAN_LENGTH` averages the lengths of all models
    (for each setting), :data:`MEAN_MAP` measures the mean of all models' maps, :data:`IMAGE` the
    sky-subtracted input (:func:`image_maps`). Settings sharing a measured map are measured together.
    """
    map_px = int(np.shape(grey)[-1])
    members: dict[tuple, list[int]] = {}
    for s, setting in enumerate(settings):
        members.setdefault((setting.method, setting.estimator, setting.x_input, setting.mask), []).append(s)
    groups = {}
    for key, columns in members.items():
        chosen = [settings[s] for s in columns]
        if key[1] == ALGORITHM1:
            tcs = tuple(sorted({c.corr_threshold for c in chosen}))
            tls = tuple(sorted({c.len_threshold_px(map_px, crop_px) for c in chosen}))
            groups[key] = _Group(*key, corr_thresholds=tcs, len_thresholds_px=tls)
        else:
            groups[key] = _Group(
                *key, fractions=tuple(sorted({c.fraction for c in chosen})), floors=tuple(sorted({c.floor for c in chosen}))
            )
    lengths = _group_lengths(
        model_maps, grey, list(groups.values()), _radii(map_px, crop_px), linearity, chunk_size, progress
    )
    out = np.empty((np.shape(grey)[0], len(settings)))
    for key, columns in members.items():
        group, values = groups[key], lengths[groups[key]]
        for s in columns:
            c = settings[s]
            if group.estimator == ALGORITHM1:
                i = group.corr_thresholds.index(c.corr_threshold)
                j = group.len_thresholds_px.index(c.len_threshold_px(map_px, crop_px))
                out[:, s] = values[:, i, j]
            else:
                out[:, s] = values[:, group.floors.index(c.floor), group.fractions.index(c.fraction)]
    return out


def method_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    x_inputs: Sequence[bool],
    corr_thresholds: Sequence[float],
    len_thresholds_px: Sequence[float],
    linearity: str = "abs_pearson",
    methods: Sequence[str] | None = None,
    chunk_size: int = 64,
    progress: bool = False,
) -> dict[tuple[str, bool], np.ndarray]:
    """The paper's grid, Algorithm 1 on unmasked maps: {(method, x_input): lengths in map pixels (n, n_Tc, n_Tl)}.

    ``len_thresholds_px``: T_l already scaled to this map size; ``methods`` defaults to
    :func:`method_names`. The same measurement as :func:`setting_lengths`, in the paper's layout.
    """
    methods = method_names(list(model_maps)) if methods is None else list(methods)
    tc, tl = _grid_arrays(corr_thresholds, len_thresholds_px)
    groups = {
        (m, bool(x)): _Group(m, ALGORITHM1, bool(x), NO_MASK, tuple(tc), tuple(tl)) for m in methods for x in x_inputs
    }
    lengths = _group_lengths(
        model_maps, grey, list(groups.values()), _radii(1, None), linearity, chunk_size, progress
    )
    return {key: lengths[group] for key, group in groups.items()}


def _gridsearch_entry(path: str | Path, key: str):
    """``key`` of the gridsearch stage's JSON; ValueError naming the file if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)[key]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected the gridsearch stage's JSON with a {key!r} entry ({err})") from None


def _setting(path: str | Path, key: str, record, models: Sequence[str]) -> Choice:
    try:
        choice = Choice.from_record(record)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected the gridsearch stage's JSON with a {key!r} entry ({err})") from None
    if choice.method not in source_names(models):
        raise ValueError(f"{path}: {key} method {choice.method!r} is not one of {source_names(models)}")
    return choice


def read_choice(path: str | Path, models: Sequence[str], key: str = "chosen") -> Choice:
    """The setting under ``key`` of the gridsearch stage's JSON (``chosen``: the saliency method's,
    ``chosen_image``: the image-only control's); ValueError naming the file if it is missing,
    malformed, or names a source that ``models`` cannot provide."""
    return _setting(path, key, _gridsearch_entry(path, key), models)


def read_settings(path: str | Path, models: Sequence[str], key: str = "best_per_estimator") -> list[tuple[Choice, dict]]:
    """The list of settings under ``key`` of the gridsearch stage's JSON, each with its whole record
    (validation scores included); ValueError naming the file as :func:`read_choice`."""
    entries = _gridsearch_entry(path, key)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list under {key!r}, got {type(entries).__name__}")
    return [(_setting(path, f"{key}[{i}]", record, models), record) for i, record in enumerate(entries)]


def measure_choice(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    choice: Choice,
    crop_px: int | None,
    linearity: str = "abs_pearson",
    progress: bool = False,
) -> np.ndarray:
    """Lengths in map pixels (n,) of the galaxies in ``model_maps`` with one setting (:func:`setting_lengths`)."""
    return setting_lengths(model_maps, grey, [choice], crop_px, linearity, progress=progress)[:, 0]
