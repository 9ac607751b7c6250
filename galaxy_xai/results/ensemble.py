"""Would more models measure bars better? The ensemble curve of the saliency lengths and its asymptote.

The chosen setting is applied to each model's maps alone (the ensemble's *members*); the mean of k
members' lengths is scored by Spearman's rho against a reference, averaged over every k-subset of the
M members, for k = 1..M (:func:`ensemble_curve`). Averaging shrinks what the members do not share
and keeps what they do (the bar, and the errors every model makes): if the members' lengths
correlate rho_m with each other and r_1 with the reference, the correlation of the mean of k with the
reference follows the Spearman-Brown form

    1 / r_k^2 = a + b / k,    a = rho_m / r_1^2,    b = (1 - rho_m) / r_1^2,

so r_inf = 1 / sqrt(a) = r_1 / sqrt(rho_m) is what infinitely many members of this recipe would
reach, and r_2M what doubling the ensemble would. The two coefficients are fitted to the curve by least squares
(:func:`fit_curve`), and every number comes with a 95% bootstrap interval over the galaxies (the
curve, the fit and its predictions recomputed on each resample). It is a model of exchangeable
members: members of different architectures differ in quality, so the curve averages over them; a
check against a run with twice the models is in ``docs/results.md``.

Lengths are (n, M) arrays, one column per member, in any unit (Spearman's rho is rank-based).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from galaxy_xai import statistics

MAX_SUBSETS_PER_SIZE = 64
"""Subsets of one size averaged at most (C(M, k) grows fast: 3 models have 7 subsets, 12 have 4,095);
beyond it a seeded random sample of that many subsets of the size."""

MIN_GALAXIES = 3
"""Galaxies with every member's length and the reference needed for a curve."""

DECIMALS = 9
"""Subset means are rounded to this many decimals before ranking: the same mean summed in another
order (the measure stage averages models then draws) differs in the last bits, and would break the
ties of quantised lengths in another order."""


def subsets(n_members: int, rng: np.random.Generator | None = None, max_per_size: int = MAX_SUBSETS_PER_SIZE) -> list[tuple[int, ...]]:
    """The non-empty subsets of ``n_members`` members, by size then lexicographically: every one (2^M - 1)
    while a size has at most ``max_per_size``, else ``max_per_size`` of that size drawn with ``rng``."""
    if n_members < 1:
        raise ValueError(f"ensemble: expected at least 1 member, got {n_members}")
    out = []
    for k in range(1, n_members + 1):
        sized = list(itertools.combinations(range(n_members), k))
        if len(sized) > max_per_size:
            if rng is None:
                raise ValueError(f"ensemble: {len(sized)} subsets of {k} of {n_members} members; pass rng to sample {max_per_size}")
            sized = [sized[i] for i in np.sort(rng.choice(len(sized), max_per_size, replace=False))]
        out += sized
    return out


def subset_means(lengths: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mean length of each subset of members (:func:`subsets`): ((n, S) means, (S,) subset sizes).

    ``lengths``: (n, M), one column per member; columns of the means in the order of :func:`subsets`,
    rounded to :data:`DECIMALS` decimals.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 2:
        raise ValueError(f"ensemble: expected lengths (n galaxies, M members), got shape {lengths.shape}")
    chosen = subsets(lengths.shape[1], rng)
    weights = np.zeros((lengths.shape[1], len(chosen)))
    for j, members in enumerate(chosen):
        weights[list(members), j] = 1.0 / len(members)
    return np.round(lengths @ weights, DECIMALS), np.array([len(c) for c in chosen])


def _curve_by_size(correlations: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mean over the subsets of each size: (..., S) correlations -> (..., M), column k - 1 for size k."""
    return np.stack([correlations[..., sizes == k].mean(axis=-1) for k in range(1, sizes.max() + 1)], axis=-1)


def fit_curve(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (a, b) of 1 / r_k^2 = a + b / k to curves (..., M) of r_1..r_M: two arrays (...).

    NaN where a curve has a non-positive or non-finite value (no Spearman-Brown form to fit) or fewer
    than two sizes.
    """
    curve = np.asarray(curve, dtype=np.float64)
    k = np.arange(1, curve.shape[-1] + 1, dtype=np.float64)
    if k.size < 2:
        nan = np.full(curve.shape[:-1], np.nan)
        return nan, nan
    valid = np.all(np.isfinite(curve) & (curve > 0), axis=-1)
    y = 1.0 / np.where(valid[..., None], curve, 1.0) ** 2
    x = 1.0 / k
    slope = ((x - x.mean()) * (y - y.mean(axis=-1, keepdims=True))).sum(axis=-1) / ((x - x.mean()) ** 2).sum()
    intercept = y.mean(axis=-1) - slope * x.mean()
    return np.where(valid, intercept, np.nan), np.where(valid, slope, np.nan)


def predicted(a: np.ndarray | float, b: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    """The correlation (1) a mean of ``k`` members would reach, 1 / sqrt(a + b / k) (``k`` = inf: the
    asymptote); ``a``, ``b`` and ``k`` broadcast together (bootstrap fits (B,) at one k, or one fit at
    many k). Capped at 1: a + b / k below 1 (or below 0) means more than a perfect correlation. NaN
    where a or b is."""
    inverse_square = np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64) / np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return 1.0 / np.sqrt(np.maximum(inverse_square, 1.0))


def ensemble_curve(
    lengths: np.ndarray, reference: np.ndarray, n_boot: int, rng: np.random.Generator, members: Sequence[str] | None = None
) -> dict:
    """The ensemble curve of ``lengths`` (n, M) against ``reference`` (n,), with bootstrap intervals.

    Galaxies with a non-finite length or reference are left out. Returns ``members``, ``n``,
    ``resamples`` and ``resamples_fitted`` (those whose curve could be fitted), ``k`` (1..M), ``spearman`` (r_k, the mean over k-subsets) and ``spearman_ci95``, the fitted ``a``
    and ``b``, ``doubled`` (r_2M) and ``asymptote`` (r_inf) each with its ``_ci95``. ValueError for
    fewer than 2 members or 3 usable galaxies, or mismatched shapes.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if lengths.ndim != 2 or reference.shape != lengths.shape[:1]:
        raise ValueError(f"ensemble: expected lengths (n, M) and reference (n,), got {lengths.shape} and {reference.shape}")
    n_members = lengths.shape[1]
    if n_members < 2:
        raise ValueError(f"ensemble: expected at least 2 members, got {n_members}")
    if members is not None and len(members) != n_members:
        raise ValueError(f"ensemble: {len(members)} member names for {n_members} columns of lengths")
    usable = np.all(np.isfinite(lengths), axis=1) & np.isfinite(reference)
    if usable.sum() < MIN_GALAXIES:
        raise ValueError(f"ensemble: expected at least {MIN_GALAXIES} galaxies with finite lengths and reference, got {int(usable.sum())}")
    means, sizes = subset_means(lengths[usable], rng)
    reference = reference[usable]
    curve = _curve_by_size(statistics.spearman_columns(means, reference), sizes)
    curves = statistics.bootstrap_apply(
        len(reference), n_boot, rng,
        lambda idx: _curve_by_size(statistics.resampled_correlations(means, reference, idx, "spearman"), sizes),
        columns=means.shape[1],
    )  # fmt: skip
    a, b = fit_curve(curve)
    a_boot, b_boot = fit_curve(curves)
    doubled_k = 2 * n_members
    out = {
        "members": list(members) if members is not None else [f"member {j}" for j in range(n_members)],
        "n": int(usable.sum()),
        "resamples": int(n_boot),
        "resamples_fitted": int(np.isfinite(a_boot).sum()),
        "k": list(range(1, n_members + 1)),
        "spearman": curve.tolist(),
        "spearman_ci95": [list(statistics.percentile_interval(curves[:, j])) for j in range(n_members)],
        "a": float(a),
        "b": float(b),
        "doubled_k": doubled_k,
    }
    for name, k in (("doubled", doubled_k), ("asymptote", np.inf)):
        out[name] = float(predicted(a, b, k))
        out[f"{name}_ci95"] = list(statistics.percentile_interval(predicted(a_boot, b_boot, k)))
    return out
