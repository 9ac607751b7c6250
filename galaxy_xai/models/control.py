"""The control CNN (the paper's baseline: the bar length straight from the image), scored like the saliency method.

A CNN learns :data:`TARGET` (``length_scaled``, units of 2 PETROR90_R; or, on the synthetic sky, the
true length: :func:`target_lengths`) from the image, cross-fitted
over the bar catalogue (:func:`galaxy_xai.data.splits.control_folds`, :func:`galaxy_xai.models.training.cross_fit`),
so every galaxy is predicted by a model that never saw it. Its out-of-fold predictions are converted
to 424-px pixels and scored with :func:`galaxy_xai.results.evaluation.measurement_summary`, the measure
stage's protocol, on every XAI test galaxy and on fold 0 alone (the paper's single 64/16/20 split).
Bar-catalogue rows are :func:`galaxy_xai.data.tables.xai_rows` rows; predictions are (n,) over the
bar catalogue's rows, in their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from galaxy_xai import units
from galaxy_xai.models.training import FitResult
from galaxy_xai.results import evaluation
from galaxy_xai.statistics import rmse

TARGET = "length_scaled"
"""The bar-catalogue column the control CNN learns by default (Hoyle length in units of 2 PETROR90_R)."""
TRUE_TARGET = "true_length_scaled"
"""The column :func:`target_lengths` adds for ``control.target: truth`` (true length, units of 2 PETROR90_R)."""
DRAW_COLUMNS = ["measured_draw0_px424", "measured_draw1_px424", "error_px424", "error_kpc"]
"""Per-galaxy columns of evaluation.measurement_summary that mean nothing for a deterministic predictor."""


def target_lengths(bars: pd.DataFrame, target: str, source: str) -> tuple[str, pd.DataFrame]:
    """(column, bars with that column): what the control CNN learns, in units of 2 PETROR90_R.

    ``target`` ``"catalogue"``: the volunteers' length :data:`TARGET` (the paper's control);
    ``"truth"``: :data:`TRUE_TARGET` from the true length in 424-px pixels (``true_length_px424``),
    which only the synthetic sky has: a CNN trained on it, with no volunteer scatter in its labels,
    is the supervised ceiling of what the images tell about bar length at this scale. ValueError
    naming ``source`` (the bar table) when the true lengths are absent or not all finite and positive.
    """
    if target == "catalogue":
        return TARGET, bars
    if target != "truth":
        raise ValueError(f"control.target = {target!r}: expected catalogue or truth")
    if "true_length_px424" not in bars.columns:
        raise ValueError(
            f"{source}: control.target = truth needs the true bar lengths (column true_length_px424), which only "
            "the synthetic sky has; use control.target = catalogue on real data"
        )
    true_px424 = bars["true_length_px424"].to_numpy(dtype=float)
    bad = ~(np.isfinite(true_px424) & (true_px424 > 0))
    if bad.any():
        raise ValueError(
            f"{source}: control.target = truth: true_length_px424 of objid {bars['objid'].iloc[np.flatnonzero(bad)[0]]} "
            f"is {true_px424[bad][0]}: expected a positive length in every row"
        )
    return TRUE_TARGET, bars.assign(**{TRUE_TARGET: units.px424_to_scaled(true_px424)})



def paper_split_rows(test_rows: pd.DataFrame, objids: np.ndarray, fold_of: np.ndarray, source: str) -> pd.DataFrame:
    """The XAI test rows in fold 0 (the paper's single split's control test galaxies), index 0..n-1.

    ``fold_of`` (n,): the fold of each bar galaxy ``objids`` (n,). Raises ValueError naming ``source``
    (the bar table) if fewer than 2 remain: no correlation to report.
    """
    fold_by_objid = pd.Series(fold_of, index=objids)
    paper = test_rows[fold_by_objid.loc[test_rows["objid"]].to_numpy() == 0].reset_index(drop=True)
    if len(paper) < 2:
        raise ValueError(f"{source}: fewer than 2 control test galaxies (fold 0) inside the XAI test split")
    return paper


def fold_summary(k: int, role: np.ndarray, xai_split: np.ndarray, rmse_scaled: float, result: FitResult) -> dict:
    """What fold ``k``'s model trained on and predicted, and how its training went."""
    return {
        "fold": k,
        "n_train": int((role == "train").sum()),
        "n_val": int((role == "val").sum()),
        "n_predicted": int((role == "predict").sum()),
        "n_predicted_xai_test": int(((role == "predict") & (xai_split == "test")).sum()),
        "rmse_scaled": rmse_scaled,
        **result.summary(),
    }


def scored(
    rows: pd.DataFrame, predicted_px424: pd.Series, permutations: int, n_boot: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict]:
    """evaluation.measurement_summary of the predictions (424-px pixels, indexed by objid) of ``rows``."""
    lengths = predicted_px424.loc[rows["objid"]].to_numpy()
    # A deterministic predictor has no draw-to-draw scatter: both "draws" are the same prediction.
    per_galaxy, scores = evaluation.measurement_summary(np.vstack([lengths, lengths]), rows, permutations, rng, n_boot)
    return per_galaxy.drop(columns=DRAW_COLUMNS), scores


def cross_fit_scores(
    bars: pd.DataFrame,
    samples: Mapping[str, pd.DataFrame],
    paper: pd.DataFrame,
    fold_of: np.ndarray,
    roles: Sequence[np.ndarray],
    results: Sequence[FitResult],
    predicted_scaled: np.ndarray,
    *,
    arch: str,
    permutations: int,
    n_boot: int,
    seed: int,
    target: str = TARGET,
) -> tuple[pd.DataFrame, dict]:
    """The per-galaxy predictions table and the metrics of the cross-fitted control CNN.

    ``bars``: the bar table (objid, xai_split and ``target``, the column the models learnt:
    :data:`TARGET` or :data:`TRUE_TARGET`), ``samples``: its XAI 'val' and 'test' rows, ``paper``: :func:`paper_split_rows`; ``fold_of`` (n,), ``roles`` and ``results`` (one per
    fold) as given to and returned by the cross-fitting; ``predicted_scaled`` (n,) the out-of-fold
    predictions in units of 2 PETROR90_R. The permutation nulls and bootstraps draw from one
    generator seeded with ``seed``, in a fixed order (test, paper split, val). The per-galaxy table
    has every XAI val and test galaxy (sorted by objid) with its fold, split and prediction; the
    metrics (NaN kept: see :func:`galaxy_xai.results.evaluation.finite_or_none`) hold the test scores, the
    RMSEs in units of 2 PETROR90_R, ``paper_split`` and ``per_fold``.
    """
    objids = bars["objid"].to_numpy()
    fold_by_objid = pd.Series(fold_of, index=objids)
    predicted_px424 = pd.Series(units.scaled_to_px424(predicted_scaled), index=objids)
    truth_scaled = bars[target].to_numpy(dtype=float)

    rng = np.random.default_rng(seed)
    test_rows, scores = scored(samples["test"], predicted_px424, permutations, n_boot, rng)
    _, paper_scores = scored(paper, predicted_px424, permutations, n_boot, rng)
    val_rows, _ = scored(samples["val"], predicted_px424, permutations, n_boot, rng)

    per_galaxy = pd.concat([test_rows, val_rows], ignore_index=True).sort_values("objid", kind="stable")
    by_objid = bars.set_index("objid")
    per_galaxy.insert(1, "fold", fold_by_objid.loc[per_galaxy["objid"]].to_numpy())
    per_galaxy.insert(2, "xai_split", by_objid.loc[per_galaxy["objid"], "xai_split"].to_numpy())
    per_galaxy.insert(3, "predicted_scaled", pd.Series(predicted_scaled, index=objids).loc[per_galaxy["objid"]].to_numpy())

    xai_split = bars["xai_split"].to_numpy()
    in_test, in_paper = xai_split == "test", fold_of == 0
    per_fold = [
        fold_summary(k, role, xai_split, rmse(truth_scaled[role == "predict"], predicted_scaled[role == "predict"]), result)
        for k, (role, result) in enumerate(zip(roles, results, strict=True))
    ]  # fmt: skip
    metrics = {
        **scores,
        "arch": arch,
        "target": target,
        "folds": len(roles),
        "n_bars": len(bars),
        "test_rmse_scaled": rmse(truth_scaled[in_test], predicted_scaled[in_test]),
        "out_of_fold_rmse_scaled": rmse(truth_scaled, predicted_scaled),
        "train_seconds": round(sum(r.train_seconds for r in results), 2),
        "paper_split": {
            **paper_scores,
            "test_rmse_scaled": rmse(truth_scaled[in_paper], predicted_scaled[in_paper]),
            **{k: v for k, v in per_fold[0].items() if k != "fold"},
        },
        "per_fold": per_fold,
    }
    return per_galaxy.reset_index(drop=True), metrics
