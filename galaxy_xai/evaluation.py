"""Scores of the study: correlations, their null baseline, the regression through the origin, errors.

Two conventions for the correlation of measured and catalogue bar lengths:

* the paper's (``rho``): both lengths multiplied by the galaxy's PETROR90_R (arcsec) first. The
  shared per-galaxy factor correlates the two columns even when the measurement carries no
  information, which :func:`permutation_null` quantifies;
* image units (``rho_image``): both lengths in 424-px pixels, no shared factor.

Lengths are 1-D arrays of shape (n,) over galaxies, in the same unit for both arguments unless said.

Every headline correlation carries a 95% percentile bootstrap interval (galaxies resampled with
replacement, each with its PETROR90_R factor); two methods scored on the same galaxies are compared
by a paired bootstrap of the difference, and one "beats" the other only when that interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from galaxy_xai.units import px424_to_kpc

HOYLE_RELATIVE_ERROR = 0.17
"""Relative error of the Hoyle et al. (2011) volunteer bar lengths used by the paper's regression."""


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


def permutation_null(
    measured, catalogue, factor, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Correlations after shuffling ``measured`` across galaxies: (n_permutations,).

    ``measured``, ``catalogue``: lengths (n,); ``factor``: per-galaxy factor (n,) applied to both
    after shuffling (PETROR90_R for the paper's convention; ones for image units). Each row is an
    independent permutation drawn from ``rng``; the mean is the rho the shared factor alone gives.
    """
    measured, catalogue = _vectors(measured, catalogue, "measured, catalogue")
    factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), measured.shape)
    if n_permutations < 1:
        raise ValueError(f"n_permutations = {n_permutations}: expected at least 1")
    shuffled = rng.permuted(np.broadcast_to(measured, (n_permutations, measured.size)), axis=1)
    return pearson_columns((shuffled * factor).T, catalogue * factor)


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


def bootstrap_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Galaxy indices of ``n_boot`` resamples of ``n`` galaxies with replacement: (n_boot, n) ints."""
    if n_boot < 1:
        raise ValueError(f"n_boot = {n_boot}: expected at least 1 bootstrap resample")
    if n < 2:
        raise ValueError(f"bootstrap: expected at least 2 galaxies, got {n}")
    return rng.integers(0, n, size=(n_boot, n))


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
    draws = resampled_correlations(x[:, None], y, bootstrap_indices(x.size, n_boot, rng), statistic)
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
    draws = resampled_correlations(columns, ref, bootstrap_indices(ref.size, n_boot, rng), statistic)
    interval = percentile_interval(draws[:, 0] - draws[:, 1])
    return PairedDifference(float(point[0] - point[1]), interval, verdict(interval))


CORRELATION_SCORES = {
    "rho": ("pearson", True),
    "rho_image": ("pearson", False),
    "spearman": ("spearman", True),
    "spearman_image": ("spearman", False),
}
"""Score name -> (statistic, whether both lengths are multiplied by PETROR90_R: the paper's convention)."""


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


def finite_or_none(obj):
    """``obj`` with every non-finite float replaced by None, through dicts, lists and tuples (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


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


def median_relative_spread(lengths) -> float:
    """Median over galaxies of (max - min) / mean of one galaxy's lengths, (n, k) -> float.

    For the rotation-stability check: row i holds galaxy i measured at k rotations.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 2 or lengths.shape[1] < 2:
        raise ValueError(f"median_relative_spread: expected (n, k >= 2) lengths, got {lengths.shape}")
    return float(np.median(np.ptp(lengths, axis=1) / lengths.mean(axis=1)))


# --------------------------------------------------------------------------------------------------
# The grid search table


def grid_scores(settings: pd.DataFrame, lengths_px424: np.ndarray, catalogue_px424, petror90_r) -> pd.DataFrame:
    """The grid-search table: ``settings`` (one row per setting, columns naming it, NaN for parameters
    that do not apply) with ``rho_image``, ``rho`` (paper convention) and ``n`` appended.

    ``lengths_px424``: measured lengths in 424-px pixels (n, S), column s for row s of ``settings``;
    ``catalogue_px424``, ``petror90_r``: (n,).
    """
    lengths = np.asarray(lengths_px424, dtype=np.float64)
    catalogue = np.asarray(catalogue_px424, dtype=np.float64)
    factor = np.asarray(petror90_r, dtype=np.float64)
    if lengths.ndim != 2 or lengths.shape != (catalogue.size, len(settings)):
        raise ValueError(
            f"grid_scores: expected lengths ({catalogue.size}, {len(settings)}) for {len(settings)} settings, "
            f"got {lengths.shape}"
        )
    return settings.reset_index(drop=True).assign(
        rho_image=pearson_columns(lengths, catalogue),
        rho=pearson_columns(lengths * factor[:, None], catalogue * factor),
        n=catalogue.size,
    )


def chosen_positions(scores: np.ndarray, methods: Sequence[str]) -> np.ndarray:
    """Position of the chosen setting in each row of ``scores`` (..., S): the highest score.

    Ties go to the method listed first in ``methods`` (S,), then to the first setting in grid order,
    exactly as :func:`best_per_method` followed by the best of those rows; NaN scores lose to all.
    Returns (...) ints.
    """
    codes, _ = pd.factorize(np.asarray(methods))
    order = np.argsort(codes, kind="stable")
    ranked = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)[..., order]
    return order[np.argmax(ranked, axis=-1)]


def choose_setting(table: pd.DataFrame, score: str = "rho_image") -> int:
    """Row position in ``table`` (:func:`grid_scores`) of the setting the grid search chooses."""
    return int(chosen_positions(table[score].to_numpy(dtype=np.float64), table["method"].to_numpy()))


SETTING = ("method", "estimator", "x_input", "mask", "corr_threshold", "len_threshold", "fraction", "floor")
"""The columns of a grid-search row that name a setting (the fields of :class:`galaxy_xai.barlength.Choice`)."""


def choice_stability(
    table: pd.DataFrame,
    columns: np.ndarray,
    catalogue,
    n_boot: int,
    rng: np.random.Generator,
    factor=None,
    n_alternatives: int = 3,
) -> dict:
    """How often a bootstrap of the galaxies makes the grid search choose the same method and setting.

    ``table`` (S rows, :func:`grid_scores`) names the settings; ``columns`` (n, S) are their measured
    lengths, ``catalogue`` (n,) the reference, ``factor`` (n,) PETROR90_R when
    the score is the paper's rho, None for ``rho_image``. The galaxies are resampled ``n_boot`` times
    and the choice (:func:`chosen_positions`) redone on each resample. Returns the fractions of
    resamples choosing the chosen method (``method_frequency``) and the chosen setting
    (``setting_frequency``), every chosen method's fraction (``methods``) and the ``n_alternatives``
    other settings chosen most often (``alternatives``, most frequent first).
    """
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim != 2 or columns.shape[1] != len(table):
        raise ValueError(f"choice_stability: expected columns (n, {len(table)}), got {columns.shape}")
    catalogue = np.asarray(catalogue, dtype=np.float64)
    f = np.ones_like(catalogue) if factor is None else np.asarray(factor, dtype=np.float64)
    scaled, reference = columns * f[:, None], catalogue * f
    methods = table["method"].to_numpy()
    chosen = int(chosen_positions(pearson_columns(scaled, reference), methods))
    indices = bootstrap_indices(catalogue.size, n_boot, rng)
    picks = chosen_positions(resampled_correlations(scaled, reference, indices), methods)
    counts = np.bincount(picks, minlength=len(table))
    frequency = counts / n_boot
    per_method = pd.Series(counts).groupby(methods, sort=False).sum().sort_values(ascending=False, kind="stable")
    per_method = per_method[per_method > 0] / n_boot
    others = [int(s) for s in np.argsort(-frequency, kind="stable") if s != chosen and frequency[s] > 0]
    others = others[:n_alternatives]
    settings = table.iloc[others][list(SETTING)]
    return {
        "resamples": int(n_boot),
        "method": str(methods[chosen]),
        "method_frequency": float(per_method.get(methods[chosen], 0.0)),
        "setting_frequency": float(frequency[chosen]),
        "methods": {str(m): float(v) for m, v in per_method.items()},
        "alternatives": [
            {**{k: _plain(v) for k, v in zip(SETTING, row, strict=True)}, "frequency": float(frequency[s])}
            for s, row in zip(others, settings.itertuples(index=False), strict=True)
        ],
    }


def _plain(value):
    """A NumPy scalar as the Python value JSON writes; NaN (a parameter that does not apply) as None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def best_per(table: pd.DataFrame, keys: Sequence[str], score: str = "rho_image") -> pd.DataFrame:
    """The row with the highest ``score`` for each value of the ``keys`` columns, in order of first
    appearance (first in grid order on ties; NaN last)."""
    ranked = table.assign(_score=table[score].fillna(-np.inf)).reset_index(drop=True)
    best = ranked.loc[ranked.groupby(list(keys), sort=False)["_score"].idxmax()]
    return best.drop(columns="_score").reset_index(drop=True)


def best_per_method(table: pd.DataFrame, score: str = "rho_image") -> pd.DataFrame:
    """The row with the highest ``score`` for each method (first in grid order on ties; NaN last)."""
    return best_per(table, ["method"], score)


PAPER_TABLE2_RHO = {"vgg": 0.68, "resnet": 0.71, "xception": 0.67, "mean_map": 0.76, "mean_length": 0.75}
"""Table 2 of the paper (validation rho); models are keyed by architecture family (prefix of arch)."""


def paper_table2_rho(method: str, arch: str | None = None) -> float | None:
    """The paper's validation rho for a method (a model of architecture ``arch``, or a mean method)."""
    if method in PAPER_TABLE2_RHO:
        return PAPER_TABLE2_RHO[method]
    family = next((f for f in PAPER_TABLE2_RHO if arch and arch.startswith(f)), None)
    return PAPER_TABLE2_RHO.get(family) if family else None


# --------------------------------------------------------------------------------------------------
# The bar catalogue rows and the test-set summary

CATALOGUE_SCORES = {"rho_image": "rho_image", "spearman_image": "spearman_image"}
"""Image-unit scores of a set of lengths against the catalogue: output key -> :data:`CORRELATION_SCORES` name."""

TRUTH_SCORES = {"spearman_truth_image": "spearman_image"}
"""The same against the true length (synthetic sky): the issue's target metric."""


def _truth(sample: pd.DataFrame) -> np.ndarray:
    """True lengths in 424-px pixels (n,), NaN where unknown (all of them on real data)."""
    if "true_length_px424" not in sample.columns:
        return np.full(len(sample), np.nan)
    return sample["true_length_px424"].to_numpy(dtype=np.float64)


def length_scores(measured_px424, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """Image-unit scores of one set of lengths (n,) on the galaxies of ``sample`` (:func:`galaxy_xai.prepared.xai_rows` rows).

    :data:`CATALOGUE_SCORES` and, where true lengths are known, :data:`TRUTH_SCORES`, each followed by
    ``<key>_ci95``. Galaxies without a finite length (a failed fit) are left out: ``n`` counts the
    galaxies scored, ``n_failed`` those left out, ``n_truth`` those with a true length. Scores that
    cannot be computed (fewer than 2 galaxies) are NaN.
    """
    measured = np.asarray(measured_px424, dtype=np.float64)
    catalogue = sample["length_px424"].to_numpy(dtype=np.float64)
    truth = _truth(sample)
    if measured.shape != catalogue.shape:
        raise ValueError(f"length_scores: expected {catalogue.size} lengths, got shape {measured.shape}")
    ok = np.isfinite(measured)
    known = ok & np.isfinite(truth)
    out: dict = {"n": int(ok.sum()), "n_failed": int((~ok).sum()), "n_truth": int(known.sum())}
    for keep, reference, names in ((ok, catalogue, CATALOGUE_SCORES), (known, truth, TRUTH_SCORES)):
        if keep.sum() >= 2:
            out.update(correlation_scores(measured[keep], reference[keep], None, names, n_boot, rng))
        else:
            for key in names:
                out[key], out[f"{key}_ci95"] = float("nan"), [float("nan"), float("nan")]
    return out


def paired_comparison(a_px424, b_px424, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """Method a minus method b on the galaxies where both have a finite length, by a paired bootstrap
    (:func:`paired_bootstrap_difference`): ``rho_image`` against the catalogue and, where true lengths
    are known, ``spearman_truth_image``; each {difference, ci95, verdict, n}. (n,) lengths in 424-px pixels.
    """
    a = np.asarray(a_px424, dtype=np.float64)
    b = np.asarray(b_px424, dtype=np.float64)
    catalogue = sample["length_px424"].to_numpy(dtype=np.float64)
    truth = _truth(sample)
    both = np.isfinite(a) & np.isfinite(b)
    out = {}
    for key, keep, reference in (
        ("rho_image", both, catalogue),
        ("spearman_truth_image", both & np.isfinite(truth), truth),
    ):
        if keep.sum() < 2:
            continue
        statistic = CORRELATION_SCORES[{**CATALOGUE_SCORES, **TRUTH_SCORES}[key]][0]
        diff = paired_bootstrap_difference(a[keep], b[keep], reference[keep], statistic, n_boot, rng)
        out[key] = {"difference": diff.difference, "ci95": list(diff.ci95), "verdict": diff.verdict, "n": int(keep.sum())}
    return out


def measurement_summary(
    draws_px424: np.ndarray,
    sample: pd.DataFrame,
    n_permutations: int,
    rng: np.random.Generator,
    n_boot: int,
) -> tuple[pd.DataFrame, dict]:
    """Per-galaxy lengths and the headline scores of the test protocol.

    ``draws_px424``: measured lengths in 424-px pixels from the two noise draws (2, n);
    ``sample``: the matching rows of :func:`galaxy_xai.prepared.xai_rows` (objid, length_px424, length_kpc, PETROR90_R,
    REDSHIFT, optionally true_length_px424 and true_length_kpc). The length is the mean of the draws,
    its error the decile mean of |l1 - l2| (:func:`decile_errors`, in 424-px pixels); kpc use each
    galaxy's PETROR90_R and redshift. The slope is measured / catalogue in h^-1 kpc, through the
    origin, with the Hoyle 17% error on the catalogue axis and the decile error on the measured axis.

    Both rhos get a permutation null (the measured lengths shuffled across galaxies, ``rng``) and a
    one-sided p-value: ``rho_null*`` / ``rho_p_value`` keep the shared PETROR90_R factor, so they ask
    whether the measurement adds to what the factor alone gives; ``rho_image_null_p95`` /
    ``rho_image_p_value`` ask whether the lengths in image units carry information at all.

    Every correlation (rho, rho_image, spearman, spearman_image, rho_truth, rho_truth_image,
    spearman_truth_image) is followed by ``<key>_ci95``: its 95% bootstrap interval over ``n_boot`` resamples of the galaxies.
    """
    draws = np.asarray(draws_px424, dtype=np.float64)
    if draws.ndim != 2 or draws.shape != (2, len(sample)):
        raise ValueError(f"draws_px424: expected shape (2, {len(sample)}), got {draws.shape}")
    measured = draws.mean(axis=0)
    error = decile_errors(measured, np.abs(draws[0] - draws[1]))
    factor = sample["PETROR90_R"].to_numpy(dtype=np.float64)
    kpc_per_px424 = px424_to_kpc(1.0, factor, sample["REDSHIFT"].to_numpy(dtype=np.float64))
    catalogue = sample["length_px424"].to_numpy(dtype=np.float64)
    catalogue_kpc = sample["length_kpc"].to_numpy(dtype=np.float64)
    per_galaxy = pd.DataFrame(
        {
            "objid": sample["objid"].to_numpy(),
            "measured_px424": measured,
            "measured_draw0_px424": draws[0],
            "measured_draw1_px424": draws[1],
            "error_px424": error,
            "catalogue_px424": catalogue,
            "measured_kpc": measured * kpc_per_px424,
            "error_kpc": error * kpc_per_px424,
            "catalogue_kpc": catalogue_kpc,
            "petror90_r_arcsec": factor,
            "redshift": sample["REDSHIFT"].to_numpy(dtype=np.float64),
        }
    )
    null = permutation_null(measured, catalogue, factor, n_permutations, rng)
    null_image = permutation_null(measured, catalogue, 1.0, n_permutations, rng)
    correlations = correlation_scores(measured, catalogue, factor, {k: k for k in CORRELATION_SCORES}, n_boot, rng)
    rho, rho_image = correlations["rho"], correlations["rho_image"]
    fit = fit_through_origin(
        catalogue_kpc,
        per_galaxy["measured_kpc"],
        HOYLE_RELATIVE_ERROR * catalogue_kpc,
        per_galaxy["error_kpc"],
    )
    scores = {
        "n": int(measured.size),
        **{k: correlations[k] for k in ("rho", "rho_ci95", "rho_image", "rho_image_ci95")},
        "rho_null": float(null.mean()),
        "rho_null_p95": float(np.percentile(null, 95)),
        "rho_p_value": permutation_p_value(rho, null),
        "rho_image_null_p95": float(np.percentile(null_image, 95)),
        "rho_image_p_value": permutation_p_value(rho_image, null_image),
        "permutations": int(n_permutations),
        **{k: correlations[k] for k in ("spearman", "spearman_ci95", "spearman_image", "spearman_image_ci95")},
        "resamples": int(n_boot),
        "slope": fit.slope,
        "slope_err": fit.slope_err,
        "slope_chi2_dof": fit.chi2_dof,
    }
    if "true_length_px424" in sample.columns:
        truth = sample["true_length_px424"].to_numpy(dtype=np.float64)
        per_galaxy["true_px424"] = truth
        if "true_length_kpc" in sample.columns:
            per_galaxy["true_kpc"] = sample["true_length_kpc"].to_numpy(dtype=np.float64)
        known = np.isfinite(truth)
        if known.sum() >= 2:
            scores.update(
                correlation_scores(
                    measured[known], truth[known], factor[known],
                    {"rho_truth": "rho", "rho_truth_image": "rho_image", **TRUTH_SCORES}, n_boot, rng,
                )
            )  # fmt: skip
            scores["n_truth"] = int(known.sum())
    return per_galaxy, scores
