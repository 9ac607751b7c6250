"""Would more models measure bars better? The ensemble curve of the saliency lengths and its asymptote.

The chosen setting is applied to each model's maps alone (the ensemble's *members*); the mean of k
members' lengths is scored by Spearman's rho against a reference, averaged over every k-subset of the
M members, for k = 1..M (:func:`ensemble_curve`). Averaging shrinks the errors the members do not
share and leaves the ones they do: if the members' errors correlate rho_e with each other, the
correlation of the mean of k with the reference follows the Spearman-Brown form

    1 / r_k^2 = a + b / k,    a = rho_e / r_1^2,    b = (1 - rho_e) / r_1^2,

so r_inf = 1 / sqrt(a) is what infinitely many members of this recipe would reach, and r_2M what
doubling the ensemble would. The two coefficients are fitted to the curve by least squares
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


def subsets(n_members: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of ``n_members`` members, by size then lexicographically: 2^M - 1 tuples."""
    if n_members < 1:
        raise ValueError(f"ensemble: expected at least 1 member, got {n_members}")
    return [c for k in range(1, n_members + 1) for c in itertools.combinations(range(n_members), k)]


def subset_means(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean length of every subset of members: ((n, 2^M - 1) means, (2^M - 1,) subset sizes).

    ``lengths``: (n, M), one column per member; columns in the order of :func:`subsets`.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 2:
        raise ValueError(f"ensemble: expected lengths (n galaxies, M members), got shape {lengths.shape}")
    chosen = subsets(lengths.shape[1])
    weights = np.zeros((lengths.shape[1], len(chosen)))
    for j, members in enumerate(chosen):
        weights[list(members), j] = 1.0 / len(members)
    return lengths @ weights, np.array([len(c) for c in chosen])


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


def predicted(a, b, k) -> np.ndarray:
    """The correlation a mean of ``k`` members would reach (``k`` = inf: the asymptote), capped at 1;
    ``a``, ``b`` and ``k`` broadcast together (e.g. bootstrap fits (B,) at one k, or one fit at many k)."""
    inverse_square = np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64) / np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inverse_square > 0, np.minimum(1.0, 1.0 / np.sqrt(inverse_square)), np.nan)


def ensemble_curve(
    lengths: np.ndarray, reference: np.ndarray, n_boot: int, rng: np.random.Generator, members: Sequence[str] | None = None
) -> dict:
    """The ensemble curve of ``lengths`` (n, M) against ``reference`` (n,), with bootstrap intervals.

    Galaxies with a non-finite length or reference are left out. Returns ``members``, ``n``,
    ``k`` (1..M), ``spearman`` (r_k, the mean over k-subsets) and ``spearman_ci95``, the fitted ``a``
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
    if usable.sum() < 3:
        raise ValueError(f"ensemble: expected at least 3 galaxies with finite lengths and reference, got {int(usable.sum())}")
    means, sizes = subset_means(lengths[usable])
    reference = reference[usable]
    curve = _curve_by_size(statistics.spearman_columns(means, reference), sizes)
    indices = statistics.bootstrap_indices(len(reference), n_boot, rng)
    curves = _curve_by_size(statistics.resampled_correlations(means, reference, indices, "spearman"), sizes)
    a, b = fit_curve(curve)
    a_boot, b_boot = fit_curve(curves)
    doubled_k = 2 * n_members
    out = {
        "members": list(members) if members is not None else list(range(n_members)),
        "n": int(usable.sum()),
        "resamples": int(n_boot),
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
