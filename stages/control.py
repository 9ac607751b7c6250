"""Stage ``control``: the paper's baseline CNN (rho = 0.59), cross-fitted over the whole bar catalogue.

A CNN of ``control.model`` (Xception family; one linear output) learns ``length_scaled`` directly from
the image, with the morphology models' augmentation and early stopping. ``control.folds`` such models
are trained: fold k's on the galaxies outside fold k (80% to train, 20% to stop early), and it predicts
fold k (``catalogue.control_folds`` / ``catalogue.fold_roles``), so every galaxy is predicted by a
model that never saw it and the control is measured on every XAI test galaxy, as the saliency method
is. Fold 0 is the paper's single 64/16/20 split: its test fold is the control test split that
``prepare`` draws inside the XAI test split, so fold 0's model is the paper's one model, reported on
its own as ``paper_split``.

Writes one model per fold (``--out``/fold<k>.keras), one learning curve per fold
(``--plots``/fold<k>/learning_curve.tsv), every bar galaxy's out-of-fold prediction
(``--plots``/predictions.csv) and ``--metrics``: the measure stage's scores (rho, rho_image, rho_null,
spearman, slope, rho_truth, ..., every correlation with its 95% bootstrap interval ``<score>_ci95``) on
all XAI test galaxies, ``paper_split`` with the same scores on fold 0, and a training summary per fold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_xai import catalogue, evaluation, io, models, prepared, training, units
from stages._common import start

TARGET = "length_scaled"
DRAW_COLUMNS = ["measured_draw0_px424", "measured_draw1_px424", "error_px424", "error_kpc"]
"""Per-galaxy columns of evaluation.measurement_summary that mean nothing for a deterministic predictor."""


def fold_summary(k: int, role: np.ndarray, xai_split: np.ndarray, rmse_scaled: float, result) -> dict:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=Path("data/prepared/bars.csv"))
    parser.add_argument("--out", type=Path, required=True, help="folder of the trained models, fold<k>.keras")
    parser.add_argument("--metrics", type=Path, required=True, help="scores (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of curves and predictions")
    args, cfg, log = start("control", parser, argv)

    model_cfg, n_folds = cfg.control.model, cfg.control.folds
    try:
        models.validate(model_cfg.arch, cfg.images.size_px, model_cfg.weights, head="linear")
        bars = prepared.read_bars(args.bars, columns= ["objid", "image_path", "control_split", TARGET])
        samples = {split: prepared.xai_rows(bars, split, str(args.bars)) for split in catalogue.XAI_SPLITS}
        if bars["objid"].duplicated().any():
            raise ValueError(f"{args.bars}: objid {bars.loc[bars['objid'].duplicated(), 'objid'].iloc[0]} repeated")
        objids, control_split = bars["objid"].to_numpy(), bars["control_split"].to_numpy()
        fold_of = catalogue.control_folds(objids, control_split, n_folds, cfg.seed)
        roles = [catalogue.fold_roles(objids, control_split, fold_of, k, cfg.seed) for k in range(n_folds)]
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    fold_by_objid = pd.Series(fold_of, index=objids)
    paper = samples["test"][fold_by_objid.loc[samples["test"]["objid"]].to_numpy() == 0].reset_index(drop=True)
    if len(paper) < 2:
        log.error("%s: fewer than 2 control test galaxies (fold 0) inside the XAI test split", args.bars)
        raise SystemExit(2)

    for stale in args.out.glob("fold*.keras"):  # a previous run with more folds
        stale.unlink()
    log.info(
        "cross-fitting %d control models (%s, up to %d epochs) on %s of %d bar galaxies",
        n_folds, model_cfg.arch, model_cfg.epochs, TARGET, len(bars),
    )  # fmt: skip
    predicted_scaled, results = training.cross_fit(
        bars,
        [TARGET],
        roles,
        images_cfg=cfg.images,
        model_cfg=model_cfg,
        train_cfg=cfg.train,
        seed=cfg.train.seed,  # the training runs follow train.seed; the folds follow seed
        head="linear",
        curve_dir=args.plots,
        on_model=lambda k, model: io.save_model(model, args.out / f"fold{k}.keras"),
        log=log,
    )
    predicted_scaled = predicted_scaled[:, 0]
    predicted_px424 = pd.Series(units.scaled_to_px424(predicted_scaled), index=objids)
    truth_scaled = bars[TARGET].to_numpy(dtype=float)

    rng = np.random.default_rng(cfg.seed)
    permutations, n_boot = cfg.xai.permutations, cfg.xai.bootstrap
    test_rows, scores = scored(samples["test"], predicted_px424, permutations, n_boot, rng)
    _, paper_scores = scored(paper, predicted_px424, permutations, n_boot, rng)
    val_rows, _ = scored(samples["val"], predicted_px424, permutations, n_boot, rng)

    per_galaxy = pd.concat([test_rows, val_rows], ignore_index=True).sort_values("objid", kind="stable")
    by_objid = bars.set_index("objid")
    per_galaxy.insert(1, "fold", fold_by_objid.loc[per_galaxy["objid"]].to_numpy())
    per_galaxy.insert(2, "xai_split", by_objid.loc[per_galaxy["objid"], "xai_split"].to_numpy())
    per_galaxy.insert(3, "predicted_scaled", pd.Series(predicted_scaled, index=objids).loc[per_galaxy["objid"]].to_numpy())
    io.write_csv(args.plots / "predictions.csv", per_galaxy.reset_index(drop=True))

    xai_split = bars["xai_split"].to_numpy()
    in_test, in_paper = xai_split == "test", fold_of == 0
    per_fold = [
        fold_summary(k, role, xai_split, evaluation.rmse(truth_scaled[role == "predict"], predicted_scaled[role == "predict"]), result)
        for k, (role, result) in enumerate(zip(roles, results, strict=True))
    ]  # fmt: skip
    io.write_json(
        args.metrics,
        evaluation.finite_or_none(
            {
                **scores,
                "arch": model_cfg.arch,
                "target": TARGET,
                "folds": n_folds,
                "n_bars": len(bars),
                "test_rmse_scaled": evaluation.rmse(truth_scaled[in_test], predicted_scaled[in_test]),
                "out_of_fold_rmse_scaled": evaluation.rmse(truth_scaled, predicted_scaled),
                "train_seconds": round(sum(r.train_seconds for r in results), 2),
                "paper_split": {
                    **paper_scores,
                    "test_rmse_scaled": evaluation.rmse(truth_scaled[in_paper], predicted_scaled[in_paper]),
                    **{k: v for k, v in per_fold[0].items() if k != "fold"},
                },
                "per_fold": per_fold,
            }
        ),
    )
    log.info(
        "control, cross-fit: rho %.3f [%.3f, %.3f], rho_image %.3f [%.3f, %.3f] (null %.3f) on %d XAI test galaxies; "
        "paper split (fold 0): rho_image %.3f [%.3f, %.3f] on %d",
        scores["rho"], *scores["rho_ci95"], scores["rho_image"], *scores["rho_image_ci95"], scores["rho_null"], scores["n"],
        paper_scores["rho_image"], *paper_scores["rho_image_ci95"], paper_scores["n"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
