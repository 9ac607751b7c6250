"""The study's evaluation: the grid-search table, the choice's stability, the test-set scores.

Built on :mod:`galaxy_xai.statistics` (correlations in the paper's and in image units, permutation
nulls, bootstrap intervals, paired differences, the fit through the origin): :func:`grid_scores` and
:func:`choice_stability` score the grid of bar-length settings on the validation galaxies;
:func:`length_scores`, :func:`paired_comparison` and :func:`measurement_summary` score measured
lengths (424-px pixels, (n,) over galaxies) against the catalogue and, on the synthetic sky, the
true lengths. Rows of galaxies are :func:`galaxy_xai.data.tables.xai_rows` rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from galaxy_xai.results import paper
from galaxy_xai.statistics import (
    ACCURACY_SCORES,
    CORRELATION_SCORES,
    SCORE_KEYS,
    accuracy_scores,
    bootstrap_apply,
    correlation_scores,
    decile_errors,
    fit_through_origin,
    paired_bootstrap_difference,
    pearson_columns,
    percentile_interval,
    permutation_null,
    permutation_p_value,
    resampled_correlations,
    score_keys,
)
from galaxy_xai.units import px424_to_kpc


def finite_or_none(obj):
    """``obj`` with every non-finite float replaced by None, through dicts, lists and tuples (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


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
    return int(chosen_positions(table[score].to_numpy(dtype=np.float64), table["map_source"].to_numpy()))


SETTING = ("map_source", "estimator", "x_input", "mask", "corr_threshold", "len_threshold", "fraction", "floor")
"""The columns of a grid-search row that name a setting (the fields of :class:`galaxy_xai.bars.barlength.Choice`)."""


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
    methods = table["map_source"].to_numpy()
    chosen = int(chosen_positions(pearson_columns(scaled, reference), methods))
    picks = bootstrap_apply(
        catalogue.size, n_boot, rng,
        lambda idx: chosen_positions(resampled_correlations(scaled, reference, idx), methods),
        columns=scaled.shape[1],
    )  # fmt: skip
    counts = np.bincount(picks, minlength=len(table))
    frequency = counts / n_boot
    per_method = pd.Series(counts).groupby(methods, sort=False).sum().sort_values(ascending=False, kind="stable")
    per_method = per_method[per_method > 0] / n_boot
    others = [int(s) for s in np.argsort(-frequency, kind="stable") if s != chosen and frequency[s] > 0]
    others = others[:n_alternatives]
    settings = table.iloc[others][list(SETTING)]
    return {
        "resamples": int(n_boot),
        "map_source": str(methods[chosen]),
        "map_source_frequency": float(per_method.get(methods[chosen], 0.0)),
        "setting_frequency": float(frequency[chosen]),
        "map_sources": {str(m): float(v) for m, v in per_method.items()},
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
    return best_per(table, ["map_source"], score)


# --------------------------------------------------------------------------------------------------
# The bar catalogue rows and the test-set summary

LENGTH_SCORES = {"catalogue": score_keys("rho_image", "spearman_image"), "truth": score_keys("spearman_truth_image")}
"""What :func:`length_scores` computes against each reference: image-unit scores against the catalogue,
and the headline's Spearman against the true length (synthetic sky)."""


def true_lengths(sample: pd.DataFrame) -> np.ndarray:
    """True lengths in 424-px pixels (n,), NaN where unknown (all of them on real data)."""
    if "true_length_px424" not in sample.columns:
        return np.full(len(sample), np.nan)
    return sample["true_length_px424"].to_numpy(dtype=np.float64)


def length_scores(measured_px424, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """Image-unit scores of one set of lengths (n,) on the galaxies of ``sample`` (:func:`galaxy_xai.data.tables.xai_rows` rows).

    :data:`LENGTH_SCORES` against the catalogue and, where true lengths are known, the truth, each followed by
    ``<key>_ci95``. Galaxies without a finite length (a failed fit) are left out: ``n`` counts the
    galaxies scored, ``n_failed`` those left out, ``n_truth`` those with a true length. Scores that
    cannot be computed (fewer than 2 galaxies) are NaN.
    """
    measured = np.asarray(measured_px424, dtype=np.float64)
    catalogue = sample["length_px424"].to_numpy(dtype=np.float64)
    truth = true_lengths(sample)
    if measured.shape != catalogue.shape:
        raise ValueError(f"length_scores: expected {catalogue.size} lengths, got shape {measured.shape}")
    ok = np.isfinite(measured)
    known = ok & np.isfinite(truth)
    out: dict = {"n": int(ok.sum()), "n_failed": int((~ok).sum()), "n_truth": int(known.sum())}
    for keep, reference, names in ((ok, catalogue, LENGTH_SCORES["catalogue"]), (known, truth, LENGTH_SCORES["truth"])):
        if keep.sum() >= 2:
            out.update(correlation_scores(measured[keep], reference[keep], None, names, n_boot, rng))
        else:
            for key in names:
                out[key], out[f"{key}_ci95"] = float("nan"), [float("nan"), float("nan")]
    return {**out, **accuracy(measured, sample, n_boot, rng)}


ACCURACY_REFERENCES = ("catalogue", "truth")
"""The references of :func:`accuracy`: the catalogue's lengths and, on the synthetic sky, the true ones."""


def accuracy(measured_px424, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """Absolute accuracy of lengths (n,) in 424-px pixels (:func:`galaxy_xai.statistics.accuracy_scores`)
    against each of :data:`ACCURACY_REFERENCES` where it is known and positive: keys
    ``median_abs_rel_error_<reference>``, ``within_20pct_<reference>``, ``median_ratio_<reference>``
    with ``_ci95``; NaN with fewer than 2 galaxies."""
    measured = np.asarray(measured_px424, dtype=np.float64)
    references = {"catalogue": sample["length_px424"].to_numpy(dtype=np.float64), "truth": true_lengths(sample)}
    out: dict = {}
    for name in ACCURACY_REFERENCES:
        reference = references[name]
        keep = np.isfinite(measured) & np.isfinite(reference) & (reference > 0)
        if keep.sum() >= 2:
            out.update(accuracy_scores(measured[keep], reference[keep], n_boot, rng, f"_{name}"))
        elif name == "catalogue" or np.isfinite(reference).any():
            out.update({f"{key}_{name}{end}": value for key in ACCURACY_SCORES for end, value in (("", np.nan), ("_ci95", [np.nan, np.nan]))})
    return out


def gap_closed(measured_px424, floor_px424, ceiling_px424, truth_px424, n_boot: int, rng: np.random.Generator) -> dict:
    """How much of the way from a floor to a ceiling the measured lengths go, in Spearman rho against
    the truth: ``(S - S_floor) / (S_ceiling - S_floor)`` (0: no better than the floor, e.g. the
    random-weights twins; 1: as good as the ceiling, e.g. the segmentation U-Net), on the galaxies
    where all four are finite, with a 95% interval from ``n_boot`` resamples of those galaxies (the
    three lengths on the same resamples). Lengths (n,) in 424-px pixels; {} with fewer than 3 galaxies.
    """
    columns = np.column_stack([np.asarray(a, dtype=np.float64) for a in (measured_px424, floor_px424, ceiling_px424)])
    truth = np.asarray(truth_px424, dtype=np.float64)
    keep = np.isfinite(columns).all(axis=1) & np.isfinite(truth)
    if keep.sum() < 3:
        return {}
    columns, truth = columns[keep], truth[keep]

    def fraction(rho: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (rho[..., 0] - rho[..., 1]) / (rho[..., 2] - rho[..., 1])

    point = fraction(resampled_correlations(columns, truth, np.arange(len(truth))[None, :], "spearman"))[0]
    draws = bootstrap_apply(
        len(truth), n_boot, rng, lambda idx: fraction(resampled_correlations(columns, truth, idx, "spearman")), columns=3
    )
    return {"gap_closed": float(point), "gap_closed_ci95": list(percentile_interval(draws)), "gap_closed_n": int(keep.sum())}


def paired_comparison(a_px424, b_px424, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """Method a minus method b on the galaxies where both have a finite length, by a paired bootstrap
    (:func:`paired_bootstrap_difference`): ``rho_image`` against the catalogue and, where true lengths
    are known, ``spearman_truth_image``; each {difference, ci95, verdict, n}. (n,) lengths in 424-px pixels.
    """
    a = np.asarray(a_px424, dtype=np.float64)
    b = np.asarray(b_px424, dtype=np.float64)
    catalogue = sample["length_px424"].to_numpy(dtype=np.float64)
    truth = true_lengths(sample)
    both = np.isfinite(a) & np.isfinite(b)
    out = {}
    for key, keep, reference in (
        ("rho_image", both, catalogue),
        ("spearman_truth_image", both & np.isfinite(truth), truth),
    ):
        if keep.sum() < 2:
            continue
        statistic = CORRELATION_SCORES[SCORE_KEYS[key]][0]
        diff = paired_bootstrap_difference(a[keep], b[keep], reference[keep], statistic, n_boot, rng)
        out[key] = {**diff.to_json(), "n": int(keep.sum())}
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
    ``sample``: the matching rows of :func:`galaxy_xai.data.tables.xai_rows` (objid, length_px424, length_kpc, PETROR90_R,
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
    per_galaxy = per_galaxy_lengths(draws, sample)
    measured = per_galaxy["measured_px424"].to_numpy()
    factor = per_galaxy["petror90_r_arcsec"].to_numpy()
    catalogue, catalogue_kpc = per_galaxy["catalogue_px424"].to_numpy(), per_galaxy["catalogue_kpc"].to_numpy()
    null = permutation_null(measured, catalogue, factor, n_permutations, rng)
    null_image = permutation_null(measured, catalogue, 1.0, n_permutations, rng)
    correlations = correlation_scores(measured, catalogue, factor, {k: k for k in CORRELATION_SCORES}, n_boot, rng)
    rho, rho_image = correlations["rho"], correlations["rho_image"]
    fit = fit_through_origin(
        catalogue_kpc,
        per_galaxy["measured_kpc"],
        paper.HOYLE_RELATIVE_ERROR * catalogue_kpc,
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
    truth = true_lengths(sample)
    known = np.isfinite(truth)
    if known.sum() >= 2:
        scores.update(
            correlation_scores(
                measured[known], truth[known], factor[known],
                score_keys("rho_truth", "rho_truth_image", "spearman_truth_image"), n_boot, rng,
            )
        )  # fmt: skip
        scores["n_truth"] = int(known.sum())
    scores.update(accuracy(measured, sample, n_boot, rng))
    return per_galaxy, scores


def per_galaxy_lengths(draws_px424: np.ndarray, sample: pd.DataFrame) -> pd.DataFrame:
    """The test protocol's per-galaxy table (``plots/barlengths.csv``) of the lengths of two noise draws
    (2, n) in 424-px pixels on the galaxies of ``sample``: the mean of the draws, each draw, the decile
    error (:func:`decile_errors`), the catalogue length, the same in h^-1 kpc (each galaxy's PETROR90_R
    and redshift), and the true length where ``sample`` has it."""
    measured = draws_px424.mean(axis=0)
    error = decile_errors(measured, np.abs(draws_px424[0] - draws_px424[1]))
    factor = sample["PETROR90_R"].to_numpy(dtype=np.float64)
    kpc_per_px424 = px424_to_kpc(1.0, factor, sample["REDSHIFT"].to_numpy(dtype=np.float64))
    columns = {
        "objid": sample["objid"].to_numpy(),
        "measured_px424": measured,
        "measured_draw0_px424": draws_px424[0],
        "measured_draw1_px424": draws_px424[1],
        "error_px424": error,
        "catalogue_px424": sample["length_px424"].to_numpy(dtype=np.float64),
        "measured_kpc": measured * kpc_per_px424,
        "error_kpc": error * kpc_per_px424,
        "catalogue_kpc": sample["length_kpc"].to_numpy(dtype=np.float64),
        "petror90_r_arcsec": factor,
        "redshift": sample["REDSHIFT"].to_numpy(dtype=np.float64),
    }
    if "true_length_px424" in sample.columns:
        columns["true_px424"] = sample["true_length_px424"].to_numpy(dtype=np.float64)
        if "true_length_kpc" in sample.columns:
            columns["true_kpc"] = sample["true_length_kpc"].to_numpy(dtype=np.float64)
    return pd.DataFrame(columns)
