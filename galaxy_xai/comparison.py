"""The saliency maps' lengths against the control CNN's on the same galaxies: ``metrics/comparison.json``.

:func:`control_comparisons` scores both on every XAI test galaxy both measured (the control
cross-fitted, so every one), and again on the paper's single split (fold 0's test fold, inside the XAI
test split); each score with its 95% bootstrap interval, and the two compared by a paired bootstrap of
the difference (:meth:`galaxy_xai.statistics.PairedDifference.to_json`: {difference, ci95, verdict}).
Per-galaxy tables are ``plots/barlengths.csv`` (measure stage) and ``plots/control/predictions.csv``
(control stage): ``objid``, ``measured_px424``, ``catalogue_px424``, ``petror90_r_arcsec`` and, on the
synthetic sky, ``true_px424``; lengths in 424-px pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_xai import evaluation, statistics

SHARED_SCORES = {"rho": "rho", "rho_image": "rho_image", "spearman_image": "spearman_image"}
"""Scores of both methods against the catalogue on the shared galaxies (see statistics.CORRELATION_SCORES)."""

TRUTH_SCORES = {"rho_truth_image": "rho_image", "spearman_truth_image": "spearman_image"}
"""Scores of both methods against the true length (synthetic sky, image units) on the shared galaxies."""



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
    references = {key: (both["catalogue_px424_saliency"].to_numpy(), score) for key, score in SHARED_SCORES.items()}
    rows = {key: np.ones(len(both), dtype=bool) for key in references}
    if "true_px424_saliency" in both and "true_px424_control" in both:
        truth = both["true_px424_saliency"].to_numpy(dtype=float)
        if np.isfinite(truth).sum() >= 3:
            for key, score in TRUTH_SCORES.items():
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
    return out
