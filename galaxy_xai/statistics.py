"""Statistics of two length columns: correlations, their null baseline and intervals, fits, errors.

Lengths are 1-D arrays of shape (n,) over galaxies, in the same unit for both arguments unless said.
Two conventions for the correlation of measured and catalogue bar lengths:

* the paper's (``rho``): both lengths multiplied by the galaxy's PETROR90_R (arcsec) first. The
  shared per-galaxy factor correlates the two columns even when the measurement carries no
  information, which :func:`permutation_null` quantifies;
* image units (``rho_image``): both lengths in 424-px pixels, no shared factor.

Every headline correlation carries a 95% percentile bootstrap interval (galaxies resampled with
replacement, each with its PETROR90_R factor); two methods scored on the same galaxies are compared
by a paired bootstrap of the difference, and one "beats" the other only when that interval excludes 0.
Also here: the weighted fit through the origin with errors on both axes, the paper's decile
measurement errors and RMSEs. The study's tables built from these live in :mod:`galaxy_xai.results.evaluation`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata


def _vectors(x, y, what: str = "x, y") -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"{what}: expected two 1-D arrays of the same length, got shapes {x.shape}, {y.shape}"
        )
    if x.size < 2:
        raise ValueError(f"{what}: expected at least 2 galaxies, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what}: expected finite values")
    return x, y


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between each column of ``a`` (n, k) and ``b`` (n,) or each column of ``b`` (n, k).

    Returns (k,); NaN where a column is constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b.ndim == 1:
        b = b[:, None]
    da = a - a.mean(axis=0)
    db = b - b.mean(axis=0)
    num = (da * db).sum(axis=0)
    den = np.sqrt((da * da).sum(axis=0) * (db * db).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, np.nan)
    return np.clip(r, -1.0, 1.0)


def pearson(x, y) -> float:
    """Pearson correlation of two (n,) arrays; NaN if either is constant."""
    x, y = _vectors(x, y)
    return float(pearson_columns(x[:, None], y)[0])


def spearman(x, y) -> float:
    """Spearman rank correlation of two (n,) arrays (ties get their average rank)."""
    x, y = _vectors(x, y)
    return pearson(rankdata(x), rankdata(y))


def rho_paper(measured, catalogue, petror90_r) -> float:
    """Pearson rho in the paper's convention: both lengths times PETROR90_R (arcsec), (n,) each."""
    measured, catalogue = _vectors(measured, catalogue, "measured, catalogue")
    factor = np.asarray(petror90_r, dtype=np.float64)
    if factor.shape != measured.shape:
        raise ValueError(f"petror90_r: expected shape {measured.shape}, got {factor.shape}")
    return pearson(measured * factor, catalogue * factor)


RESAMPLE_VALUES = 1 << 24
"""Most galaxy indices (or shuffled lengths) one step of a resampling holds at once: 16.8 M values,
134 MB as int64 or float64. Resamples are drawn and scored in consecutive chunks of rows below this
bound, so memory stays flat however many are asked for; NumPy's Generator draws the same numbers in
consecutive chunks as in one call (tests/test_evaluation.py checks it), so the results do not depend
on the bound, and the default sizes (1,000 x 640) fit in one chunk anyway."""


def row_chunks(n_rows: int, row_values: int, max_values: int | None = None) -> Iterator[slice]:
    """Consecutive slices of ``range(n_rows)``, each of at most ``max_values // row_values`` rows (at
    least 1); ``max_values`` defaults to :data:`RESAMPLE_VALUES`."""
    step = max(1, (RESAMPLE_VALUES if max_values is None else max_values) // max(row_values, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def permutation_null(
    measured, catalogue, factor, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Correlations after shuffling ``measured`` across galaxies: (n_permutations,).

    ``measured``, ``catalogue``: lengths (n,); ``factor``: per-galaxy factor (n,) applied to both
    after shuffling (PETROR90_R for the paper's convention; ones for image units). Each row is an
    independent permutation drawn from ``rng``; the mean is the rho the shared factor alone gives.
    The permutations are drawn in chunks of :data:`RESAMPLE_VALUES` (the same draws as one call).
    """
    measured, catalogue = _vectors(measured, catalogue, "measured, catalogue")
    factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), measured.shape)
    if n_permutations < 1:
        raise ValueError(f"n_permutations = {n_permutations}: expected at least 1")
    null = np.empty(n_permutations)
    for rows in row_chunks(n_permutations, measured.size):
        shuffled = rng.permuted(np.broadcast_to(measured, (rows.stop - rows.start, measured.size)), axis=1)
        null[rows] = pearson_columns((shuffled * factor).T, catalogue * factor)
    return null


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value of ``observed`` against its null draws (k,): (1 + #{null >= observed}) / (1 + k).

    The +1 counts the observed arrangement itself, so p is never 0 (at best 1 / (1 + k)). NaN if
    ``observed`` is NaN (a constant measurement has no correlation to test).
    """
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 1 or null.size == 0:
        raise ValueError(f"permutation_p_value: expected a non-empty 1-D null, got shape {null.shape}")
    if not np.isfinite(observed):
        return float("nan")
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))


# --------------------------------------------------------------------------------------------------
# Bootstrap intervals: resampling the galaxies

CI_LEVEL = 0.95
"""Coverage of every bootstrap interval of the study (two-sided percentile interval)."""


def spearman_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho between each column of ``a`` (n, k) and ``b`` (n,) or each column of ``b`` (n, k): (k,).

    Ranks are taken down each column (ties get their average rank); NaN where a column is constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return pearson_columns(rankdata(a, axis=0), rankdata(b, axis=0))


CORRELATIONS = {"pearson": pearson_columns, "spearman": spearman_columns}
"""Column-wise correlations by name: (n, k) and (n,) or (n, k) -> (k,)."""


def _correlation(statistic: str):
    if statistic not in CORRELATIONS:
        raise ValueError(f"statistic = {statistic!r}: expected one of {sorted(CORRELATIONS)}")
    return CORRELATIONS[statistic]


def _check_bootstrap(n: int, n_boot: int) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: expected at least 1 bootstrap resample")
    if n < 2:
        raise ValueError(f"bootstrap: expected at least 2 galaxies, got {n}")


def bootstrap_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Galaxy indices of ``n_boot`` resamples of ``n`` galaxies with replacement: (n_boot, n) ints.

    All in memory at once: the study's resamplings go through :func:`bootstrap_apply`, which draws
    the same indices chunk by chunk.
    """
    _check_bootstrap(n, n_boot)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_apply(
    n: int, n_boot: int, rng: np.random.Generator, statistic: Callable[[np.ndarray], np.ndarray], columns: int = 1
) -> np.ndarray:
    """``statistic`` of ``n_boot`` resamples of ``n`` galaxies, evaluated chunk by chunk: (n_boot, ...).

    ``statistic`` maps the galaxy indices of b resamples (b, n) to their values (b, ...); the
    indices are those of :func:`bootstrap_indices` with the same ``rng``, drawn in consecutive
    chunks of rows so that a chunk holds at most :data:`RESAMPLE_VALUES` indices and at most as many
    of the ``columns`` values per resample ``statistic`` returns. Memory stays flat whatever
    ``n_boot`` is; the results equal one call on all the indices.
    """
    _check_bootstrap(n, n_boot)
    parts = [
        statistic(rng.integers(0, n, size=(rows.stop - rows.start, n)))
        for rows in row_chunks(n_boot, max(n, columns))
    ]
    return np.concatenate(parts)


def resampled_correlations(
    a: np.ndarray, b: np.ndarray, indices: np.ndarray, statistic: str = "pearson", max_values: int = 1_000_000
) -> np.ndarray:
    """The correlation of each column of ``a`` (n, k) with ``b`` (n,) on each resample: (B, k).

    ``indices`` (B, n) are the galaxies of each resample (:func:`bootstrap_indices`); the resamples are
    gathered ``max_values // (n k)`` at a time, all columns of all resamples of a chunk in one call of
    the column-wise statistic. NaN where a resample makes a column constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    corr = _correlation(statistic)
    n, k = a.shape
    if b.shape != (n,) or indices.ndim != 2 or indices.shape[1] != n:
        raise ValueError(
            "resampled_correlations: expected a (n, k), b (n,), indices (B, n); "
            f"got {a.shape}, {b.shape}, {indices.shape}"
        )
    out = np.empty((indices.shape[0], k))
    chunk = max(1, max_values // (n * k))
    for start in range(0, indices.shape[0], chunk):
        idx = indices[start : start + chunk]
        # Column j * k + m of the gathered matrices is column m of resample j.
        gathered_a = a[idx].transpose(1, 0, 2).reshape(n, -1)
        gathered_b = np.repeat(b[idx].T, k, axis=1)
        out[start : start + len(idx)] = corr(gathered_a, gathered_b).reshape(len(idx), k)
    return out


def bootstrap_correlations(
    a: np.ndarray, b: np.ndarray, n_boot: int, rng: np.random.Generator, statistic: str = "pearson"
) -> np.ndarray:
    """The correlation of each column of ``a`` (n, k) with ``b`` (n,) on ``n_boot`` bootstrap
    resamples of the galaxies drawn from ``rng``: (n_boot, k), via :func:`bootstrap_apply`."""
    a = np.asarray(a, dtype=np.float64)
    return bootstrap_apply(
        a.shape[0], n_boot, rng, lambda idx: resampled_correlations(a, b, idx, statistic), columns=a.shape[1]
    )


def percentile_interval(draws, level: float = CI_LEVEL) -> tuple[float, float]:
    """Central ``level`` interval of bootstrap draws (B,): their (1 - level) / 2 and (1 + level) / 2 quantiles.

    Non-finite draws (resamples where a column was constant) are left out; (NaN, NaN) if none is finite.
    """
    draws = np.asarray(draws, dtype=np.float64).ravel()
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def percentile_intervals(draws, level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """:func:`percentile_interval` of each column of ``draws`` (B, k): (lo (k,), hi (k,)), NaN where a
    column has no finite draw."""
    draws = np.asarray(draws, dtype=np.float64)
    tail = 50.0 * (1.0 - level)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, as documented
        lo, hi = np.nanpercentile(draws, [tail, 100.0 - tail], axis=0)
    return lo, hi


def _scaled(x, y, factor, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` (n,) times the per-galaxy ``factor`` (n,; None: ones), checked."""
    x, y = _vectors(x, y, what)
    if factor is None:
        return x, y
    factor = np.asarray(factor, dtype=np.float64)
    if factor.shape != x.shape or not np.isfinite(factor).all():
        raise ValueError(f"{what}: expected a finite factor of shape {x.shape}, got shape {factor.shape}")
    return x * factor, y * factor


def bootstrap_ci(
    x, y, statistic: str, n_boot: int, rng: np.random.Generator, factor=None
) -> tuple[float, float]:
    """95% percentile bootstrap interval (lo, hi) of the correlation of ``x`` and ``y`` (n,) over galaxies.

    ``statistic``: 'pearson' or 'spearman'. ``factor`` (n,), e.g. PETROR90_R for the paper's rho,
    multiplies both lengths of a galaxy and travels with it in the resamples; None for image units.
    """
    x, y = _scaled(x, y, factor, "bootstrap_ci: x, y")
    draws = bootstrap_correlations(x[:, None], y, n_boot, rng, statistic)
    return percentile_interval(draws[:, 0])


VERDICTS = ("beats", "ties", "loses")


def verdict(interval: tuple[float, float]) -> str:
    """'beats' if the interval of a difference (a - b) lies above 0, 'loses' if below, else 'ties'.

    A NaN interval excludes nothing, so it ties: no claim of a winner without evidence.
    """
    lo, hi = interval
    if lo > 0:
        return "beats"
    if hi < 0:
        return "loses"
    return "ties"


class PairedDifference(NamedTuple):
    """Correlation of method a minus that of method b with the same reference on the same galaxies."""

    difference: float
    ci95: tuple[float, float]
    verdict: str

    def to_json(self) -> dict:
        """{difference, ci95: [lo, hi], verdict}, as the metrics files write a paired difference."""
        return {"difference": self.difference, "ci95": list(self.ci95), "verdict": self.verdict}


def paired_bootstrap_difference(
    a, b, reference, statistic: str, n_boot: int, rng: np.random.Generator, factor=None
) -> PairedDifference:
    """corr(a, reference) - corr(b, reference) over galaxies (n,), with its paired bootstrap interval.

    Both methods are scored on the same resamples of the galaxies, so the scatter they share (which
    galaxies happen to be drawn) cancels in the difference. ``statistic`` and ``factor`` as in
    :func:`bootstrap_ci`; the verdict is :func:`verdict` of the interval.
    """
    a, ref = _scaled(a, reference, factor, "paired_bootstrap_difference: a, reference")
    b, _ = _scaled(b, reference, factor, "paired_bootstrap_difference: b, reference")
    columns = np.column_stack([a, b])
    point = _correlation(statistic)(columns, ref)
    draws = bootstrap_correlations(columns, ref, n_boot, rng, statistic)
    interval = percentile_interval(draws[:, 0] - draws[:, 1])
    return PairedDifference(float(point[0] - point[1]), interval, verdict(interval))


CORRELATION_SCORES = {
    "rho": ("pearson", True),
    "rho_image": ("pearson", False),
    "spearman": ("spearman", True),
    "spearman_image": ("spearman", False),
}
"""Score name -> (statistic, whether both lengths are multiplied by PETROR90_R: the paper's convention)."""

SCORE_KEYS = {
    **{name: name for name in CORRELATION_SCORES},
    "rho_truth": "rho",
    "rho_truth_image": "rho_image",
    "spearman_truth_image": "spearman_image",
    "pearson_truth": "rho_image",
    "spearman_truth": "spearman_image",
}
"""Every key under which a metrics file stores a correlation -> its :data:`CORRELATION_SCORES` score.
A ``truth`` key is the same score against the true length (synthetic sky) instead of the catalogue."""


def score_keys(*keys: str) -> dict[str, str]:
    """{key: score} of :data:`SCORE_KEYS` for ``keys``, in that order: the ``names`` of :func:`correlation_scores`."""
    return {key: SCORE_KEYS[key] for key in keys}


def correlation_scores(
    measured, reference, factor, names: Mapping[str, str], n_boot: int, rng: np.random.Generator
) -> dict:
    """Named correlations of ``measured`` and ``reference`` (n,), each followed by ``<key>_ci95: [lo, hi]``.

    ``names``: {output key: score of :data:`CORRELATION_SCORES`}, e.g. {'rho_truth': 'rho'};
    ``factor``: PETROR90_R (n,) for the paper-convention scores.
    """
    out: dict = {}
    for key, name in names.items():
        statistic, scaled = CORRELATION_SCORES[name]
        f = factor if scaled else None
        x, y = _scaled(measured, reference, f, key)
        out[key] = float(_correlation(statistic)(x[:, None], y)[0])
        out[f"{key}_ci95"] = list(bootstrap_ci(x, y, statistic, n_boot, rng))
    return out



class OriginFit(NamedTuple):
    """Weighted least-squares line y = slope * x through the origin."""

    slope: float
    slope_err: float
    chi2_dof: float


def fit_through_origin(x, y, sigma_x, sigma_y, max_iter: int = 100, rtol: float = 1e-12) -> OriginFit:
    """Weighted least-squares slope of y = b x with errors on both axes (effective variance).

    ``x``, ``y``: (n,); ``sigma_x``, ``sigma_y``: their 1-sigma errors (n,) or scalars, same units.
    Weights are ``w = 1 / (sigma_y^2 + b^2 sigma_x^2)`` (the effective-variance method), re-evaluated
    with the current slope until it changes by less than ``rtol``: ``b = sum(w x y) / sum(w x^2)``.
    ``slope_err = 1 / sqrt(sum(w x^2))`` is the formal error from the stated errors (not rescaled);
    ``chi2_dof = sum(w (y - b x)^2) / (n - 1)`` says whether those errors describe the scatter.
    """
    x, y = _vectors(x, y)
    sx2 = np.broadcast_to(np.asarray(sigma_x, dtype=np.float64) ** 2, x.shape)
    sy2 = np.broadcast_to(np.asarray(sigma_y, dtype=np.float64) ** 2, x.shape)
    if not (np.isfinite(sx2).all() and np.isfinite(sy2).all()):
        raise ValueError("sigma_x, sigma_y: expected finite errors")
    slope = float((x * y).sum() / (x * x).sum())
    for _ in range(max_iter):
        variance = sy2 + slope**2 * sx2
        if (variance <= 0).any():
            raise ValueError(
                "fit_through_origin: a galaxy has zero error on both axes; expected positive errors"
            )
        w = 1.0 / variance
        new = float((w * x * y).sum() / (w * x * x).sum())
        done = abs(new - slope) <= rtol * abs(new)
        slope = new
        if done:
            break
    w = 1.0 / (sy2 + slope**2 * sx2)
    slope_err = float(1.0 / np.sqrt((w * x * x).sum()))
    chi2_dof = float((w * (y - slope * x) ** 2).sum() / max(x.size - 1, 1))
    return OriginFit(slope, slope_err, chi2_dof)


def decile_errors(length, abs_diff, n_bins: int = 10) -> np.ndarray:
    """The paper's measurement error: mean |l1 - l2| within bins of equal counts of ``length``.

    ``length``: mean of the two measurements (n,); ``abs_diff``: |l1 - l2| (n,), same unit. Galaxies
    are ranked by length and cut into ``n_bins`` groups of (nearly) equal size (deciles by default;
    fewer groups when there are fewer galaxies); each galaxy gets its group's mean. Returns (n,).
    """
    length, abs_diff = _vectors(length, abs_diff, "length, abs_diff")
    order = np.argsort(length, kind="stable")
    error = np.empty_like(abs_diff)
    for group in np.array_split(order, min(n_bins, length.size)):
        error[group] = abs_diff[group].mean()
    return error


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over all entries of two arrays of the same shape."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(
            f"rmse: expected two non-empty arrays of the same shape, got {y_true.shape}, {y_pred.shape}"
        )
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def per_column_rmse(y_true, y_pred) -> np.ndarray:
    """RMSE of each output column of (n, k) arrays: (k,)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape or not y_true.shape[0]:
        raise ValueError(f"per_column_rmse: expected two (n, k) arrays, got {y_true.shape}, {y_pred.shape}")
    return np.sqrt(np.mean((y_true - y_pred) ** 2, axis=0))



# --- absolute accuracy ------------------------------------------------------------------------------

WITHIN_FRACTION = 0.20
"""Hoyle et al. (2011): the volunteers' bar lengths agree to better than 20%: a length within this
fraction of the reference counts as measured."""


def _relative_error(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(measured - reference) / reference


ACCURACY_SCORES = {
    "median_abs_rel_error": lambda m, r, axis: np.median(_relative_error(m, r), axis=axis),
    "within_20pct": lambda m, r, axis: np.mean(_relative_error(m, r) <= WITHIN_FRACTION, axis=axis),
    "median_ratio": lambda m, r, axis: np.median(m / r, axis=axis),
}
"""Absolute accuracy of lengths ``m`` against a reference ``r`` (same units, r > 0), reduced over
``axis``: the median of |m - r| / r, the fraction within :data:`WITHIN_FRACTION` of r, and the median
of m / r (1: no overall bias; a correlation cannot see a length that runs 16% long)."""


def accuracy_scores(measured, reference, n_boot: int, rng: np.random.Generator, suffix: str = "") -> dict:
    """:data:`ACCURACY_SCORES` of lengths ``measured`` against ``reference`` (n,), each as
    ``<name><suffix>`` followed by ``<name><suffix>_ci95``, its 95% percentile bootstrap interval over
    ``n_boot`` resamples of the galaxies (one set of resamples for the three)."""
    m, r = _vectors(measured, reference, "accuracy_scores: measured, reference")
    if np.any(r <= 0):
        raise ValueError("accuracy_scores: expected reference lengths > 0")
    scores = list(ACCURACY_SCORES.values())
    draws = bootstrap_apply(
        m.size, n_boot, rng, lambda idx: np.stack([score(m[idx], r[idx], 1) for score in scores], axis=1), len(scores)
    )
    out: dict = {}
    for column, (name, score) in enumerate(ACCURACY_SCORES.items()):
        out[f"{name}{suffix}"] = float(score(m, r, None))
        out[f"{name}{suffix}_ci95"] = list(percentile_interval(draws[:, column]))
    return out
