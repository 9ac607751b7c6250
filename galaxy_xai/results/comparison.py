"""The saliency maps' lengths against the control CNN's on the same galaxies: ``metrics/comparison.json``.

:func:`control_comparisons` scores both on every XAI test galaxy both measured (the control
cross-fitted, so every one), and again on the paper's single split (fold 0's test fold, inside the XAI
test split); each score with its 95% bootstrap interval, and the two compared by a paired bootstrap of
the difference (:meth:`galaxy_xai.statistics.PairedDifference.to_json`: {difference, ci95, verdict}).
Per-galaxy tables are ``plots/barlengths.csv`` (measure stage) and ``plots/control/predictions.csv``
(control stage): ``objid``, ``measured_px424``, ``catalogue_px424``, ``petror90_r_arcsec`` and, on the
synthetic sky, ``true_px424``; lengths in 424-px pixels.

:func:`complement_comparison` (``complements`` in the same file) asks what each length adds to the
classical isophote length: fixed combinations (:data:`COMBINATIONS`) scored by the Spearman rho of
their members' mean rank (:func:`rank_mean`), and compared in pairs (:data:`COMBINATION_COMPARISONS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from galaxy_xai import statistics
from galaxy_xai.results import evaluation

SHARED_SCORES = {
    "catalogue": statistics.score_keys("rho", "rho_image", "spearman_image"),
    "truth": statistics.score_keys("rho_truth_image", "spearman_truth_image"),
}
"""Scores of both methods on the shared galaxies against the catalogue and against the true length
(synthetic sky, image units)."""



def shared_comparison(
    saliency_rows: pd.DataFrame, control_rows: pd.DataFrame, n_boot: int, rng: np.random.Generator
) -> dict:
    """Both methods scored on the galaxies present in both per-galaxy tables (inner join on objid).

    Each score comes with its 95% bootstrap interval (``<score>_ci95``), and ``difference`` holds, per
    score, saliency minus control from a paired bootstrap over the same resamples of the shared
    galaxies: {score: {difference, ci95, verdict}}, the verdict from ``statistics.verdict``.
    """
    both = saliency_rows.merge(control_rows, on="objid", suffixes=("_saliency", "_control"))
    out: dict = {"n_shared": len(both)}
    if len(both) < 3:
        return out
    out["resamples"] = int(n_boot)
    factor = both["petror90_r_arcsec_saliency"].to_numpy()
    # One catalogue for both methods: the paired difference needs a common reference.
    references = {key: (both["catalogue_px424_saliency"].to_numpy(), score) for key, score in SHARED_SCORES["catalogue"].items()}
    rows = {key: np.ones(len(both), dtype=bool) for key in references}
    if "true_px424_saliency" in both and "true_px424_control" in both:
        truth = both["true_px424_saliency"].to_numpy(dtype=float)
        if np.isfinite(truth).sum() >= 3:
            for key, score in SHARED_SCORES["truth"].items():
                # Only the galaxies with a true length (every one on the synthetic sky).
                references[key], rows[key] = (truth, score), np.isfinite(truth)
            out["n_truth"] = int(np.isfinite(truth).sum())
    measured = {method: both[f"measured_px424_{method}"].to_numpy() for method in ("saliency", "control")}
    for method, lengths in measured.items():
        out[method] = {}
        for key, (reference, score) in references.items():
            r = rows[key]
            out[method].update(statistics.correlation_scores(lengths[r], reference[r], factor[r], {key: score}, n_boot, rng))
    out["difference"] = {}
    for key, (reference, score) in references.items():
        statistic, scaled = statistics.CORRELATION_SCORES[score]
        r = rows[key]
        paired = statistics.paired_bootstrap_difference(
            measured["saliency"][r], measured["control"][r], reference[r], statistic, n_boot, rng, factor[r] if scaled else None
        )
        out["difference"][key] = paired.to_json()
    return evaluation.finite_or_none(out)


def control_comparisons(saliency_rows: pd.DataFrame, control_rows: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """The saliency method vs the control CNN: :func:`shared_comparison` on every XAI test galaxy both
    measured (the control cross-fitted), and under ``paper_split`` the same on the paper's single
    split (fold 0: one model, its 20% test fold inside the XAI test split).

    ``control_rows`` is plots/control/predictions.csv: every bar galaxy's out-of-fold prediction with
    its ``fold`` and ``xai_split``; a table without them (an older control stage) is compared as is.
    """
    test = control_rows[control_rows["xai_split"] == "test"] if "xai_split" in control_rows else control_rows
    out = shared_comparison(saliency_rows, test, n_boot, rng)
    if "fold" in test:
        out["paper_split"] = shared_comparison(saliency_rows, test[test["fold"] == 0], n_boot, rng)
    if COMPLEMENT_BASE in saliency_rows:
        out["complements"] = complement_comparison(saliency_rows, test, n_boot, rng)
    return out


# --------------------------------------------------------------------------------------------------
# Complements: what each length adds to the classical astronomer's isophote length

COMPLEMENT_BASE = "isophote_px424"
"""The classical length every combination starts from (``plots/barlengths.csv``'s column)."""

COMPLEMENT_COLUMNS = {
    "isophote": COMPLEMENT_BASE,
    "saliency": "measured_px424",
    "image": "image_px424",
    "control": "control_px424",
}
"""Member name -> column of the joined per-galaxy table (:func:`complement_comparison`)."""

COMBINATIONS = {
    "isophote": ("isophote",),
    "isophote+image": ("isophote", "image"),
    "isophote+control": ("isophote", "control"),
    "isophote+saliency": ("isophote", "saliency"),
    "isophote+control+image": ("isophote", "control", "image"),
    "isophote+control+saliency": ("isophote", "control", "saliency"),
    "isophote+control+image+saliency": ("isophote", "control", "image", "saliency"),
}
"""The combinations scored: each the mean of its members' ranks (:func:`rank_mean`)."""

COMBINATION_COMPARISONS = (
    ("isophote+saliency", "isophote"),
    ("isophote+saliency", "isophote+image"),
    ("isophote+saliency", "isophote+control"),
    ("isophote+control+saliency", "isophote+control"),
    ("isophote+control+saliency", "isophote+control+image"),
    ("isophote+control+image+saliency", "isophote+control+image"),
)
"""(a, b) pairs compared by a paired bootstrap: does the saliency length add to the isophote length,
more than the image-only length or the control CNN add; does it add to both together, more than the
image-only length adds to them; and does it add to all three?"""


def rank_mean(lengths: np.ndarray) -> np.ndarray:
    """The mean over methods of each galaxy's rank among the galaxies: (n, k) lengths -> (n,) in [1, n].

    Ranks (mid-ranks for ties) put lengths of different scales and outliers on one footing, so k
    independent measurements of the same ordering average their errors down; no label is used.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 2 or not np.isfinite(lengths).all():
        raise ValueError(f"rank_mean: expected finite lengths (n, k), got shape {lengths.shape}")
    return stats.rankdata(lengths, axis=0).mean(axis=1)


def complement_comparison(saliency_rows: pd.DataFrame, control_rows: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict:
    """The isophote length combined with each other length by :func:`rank_mean`, on the test galaxies
    every member measured (an isophote fit can fail).

    ``saliency_rows``: plots/barlengths.csv (``measured_px424``, ``image_px424``, ``isophote_px424``,
    ``catalogue_px424``, ``true_px424`` on the synthetic sky); ``control_rows``: the control CNN's
    test rows of plots/control/predictions.csv. Returns {n, scores: {combination: Spearman against the
    catalogue (``spearman_image``) and the truth (``spearman_truth_image``), each with ``_ci95``},
    difference: {"a - b": {score: {difference, ci95, verdict}}}} for :data:`COMBINATION_COMPARISONS`.
    A score is the Spearman rho of the rank mean, so a combination needs no weights and no choice.
    """
    control = control_rows[["objid", "measured_px424"]].rename(columns={"measured_px424": "control_px424"})
    both = saliency_rows.merge(control, on="objid")
    columns = list(COMPLEMENT_COLUMNS.values())
    both = both[np.isfinite(both[columns].to_numpy(dtype=float)).all(axis=1)]
    out: dict = {"n": len(both), "resamples": int(n_boot)}
    if len(both) < 3:
        return out
    references = {"spearman_image": both["catalogue_px424"].to_numpy(dtype=float)}
    if "true_px424" in both and np.isfinite(both["true_px424"].to_numpy(dtype=float)).all():
        references["spearman_truth_image"] = both["true_px424"].to_numpy(dtype=float)
    combined = {
        name: rank_mean(both[[COMPLEMENT_COLUMNS[m] for m in members]].to_numpy()) for name, members in COMBINATIONS.items()
    }
    out["scores"] = {
        name: {
            key: value
            for score, reference in references.items()
            for key, value in statistics.correlation_scores(values, reference, None, {score: "spearman_image"}, n_boot, rng).items()
        }
        for name, values in combined.items()
    }
    out["difference"] = {
        f"{a} - {b}": {
            score: statistics.paired_bootstrap_difference(combined[a], combined[b], reference, "spearman", n_boot, rng).to_json()
            for score, reference in references.items()
        }
        for a, b in COMBINATION_COMPARISONS
    }
    return evaluation.finite_or_none(out)


def catalogue_benchmark(rows: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict | None:
    """The catalogue's own lengths scored against the true ones (synthetic sky) on the galaxies of
    ``rows`` (the measure stage's per-galaxy table: ``catalogue_px424``, ``true_px424``): ``n``,
    ``rho_image`` and ``spearman_image`` with their intervals, and the absolute accuracy
    (:func:`galaxy_xai.statistics.accuracy_scores`, keys ending ``_truth``); None without truth."""
    if "true_px424" not in rows or "catalogue_px424" not in rows:
        return None
    catalogue = rows["catalogue_px424"].to_numpy(dtype=np.float64)
    truth = rows["true_px424"].to_numpy(dtype=np.float64)
    keep = np.isfinite(catalogue) & np.isfinite(truth) & (truth > 0)
    if keep.sum() < 3:
        return None
    names = statistics.score_keys("rho_image", "spearman_image")  # against the truth, under the catalogue's keys
    return {
        "n": int(keep.sum()),
        **statistics.correlation_scores(catalogue[keep], truth[keep], None, names, n_boot, rng),
        **statistics.accuracy_scores(catalogue[keep], truth[keep], n_boot, rng, "_truth"),
    }
