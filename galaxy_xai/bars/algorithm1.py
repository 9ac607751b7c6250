"""Algorithm 1 of Bhambra et al. (2022): isolate the bar in a saliency map and measure its length.

This module holds the algorithm alone: input checks, the threshold scan, the two linearity rules,
the farthest pixel pair, :func:`isolate_bar`, :func:`bar_length_px`, the (T_c, T_l) grids
:func:`bar_length_grid` / :func:`bar_lengths_grid`, and :func:`scale_len_threshold`. What the study
measures with it (sources, X_input, masks, the Fourier estimator, the grid search's settings) is in
:mod:`galaxy_xai.bars.barlength`.

The published rule (``linearity="abs_pearson"``: the paper's rule, and the default argument of the
functions here; the study's configured default, ``xai.linearity``, is ``elongation``, below):

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

Shapes: one map is ``(H, W)``; a stack is ``(n, H, W)``; a grid result is ``(n_Tc, n_Tl)`` per map.
Lengths are in pixels of the map (see :mod:`galaxy_xai.units` for 424-px pixels and kpc).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from galaxy_xai.config import LINEARITIES
from galaxy_xai.units import PAPER_MAP_PX, scale_len_threshold  # noqa: F401 - part of this module's API

THRESHOLDS = np.arange(0.5, 1.0, 0.0001)
"""The published threshold scan T_h (5,000 values from 0.5 to 0.9999)."""

_RECHECK_TOL = 1e-9
"""|r| this close to T_c is recomputed exactly as the published code does (prefix-sum r is ~1e-15 off)."""

_MAX_SIDE = 1024
"""Largest map side for which the int64 moment sums are exact."""


# --------------------------------------------------------------------------------------------------
# Input checks


def check_linearity(linearity: str) -> None:
    """Raise ValueError unless ``linearity`` is one of :data:`LINEARITIES`."""
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


def threshold_grid(corr_thresholds, len_thresholds) -> tuple[np.ndarray, np.ndarray]:
    """The (T_c, T_l) grid's two axes as float64 vectors (n_c,), (n_l,), checked non-empty and finite."""
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
    check_linearity(linearity)
    map64 = _as_map(saliency_map)
    scan = _scan(map64)
    tc, tl = threshold_grid(corr_threshold, len_threshold)
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
    check_linearity(linearity)
    tc, tl = threshold_grid(corr_thresholds, len_thresholds)
    return _lengths_of_scan(_scan(_as_map(saliency_map)), tc, tl, linearity)


def bar_lengths_grid(
    saliency_maps: np.ndarray,
    corr_thresholds: Sequence[float],
    len_thresholds: Sequence[float],
    linearity: str = "abs_pearson",
) -> np.ndarray:
    """:func:`bar_length_grid` for a stack of maps (n, H, W): lengths in map pixels (n, n_Tc, n_Tl)."""
    check_linearity(linearity)
    maps = _as_stack(saliency_maps)
    tc, tl = threshold_grid(corr_thresholds, len_thresholds)
    out = np.empty((maps.shape[0], tc.size, tl.size))
    for i, one in enumerate(maps):
        out[i] = _lengths_of_scan(_scan(_as_map(one, f"saliency_maps[{i}]")), tc, tl, linearity)
    return out
