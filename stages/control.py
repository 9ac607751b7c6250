"""Stage ``control``: a CNN trained to predict bar lengths directly, the paper's baseline (rho = 0.59).

Trains ``control.model`` (Xception family; one linear output) on ``length_scaled`` of the bar
catalogue's control split (64/16/20), with the morphology models' augmentation and early stopping,
then predicts the control test galaxies. Because ``prepare`` makes the control test split a subset
of the XAI test split, the saliency method measured every one of these galaxies too: the figure
stage compares the two methods on exactly these galaxies.

Writes the model, its learning curves, per-galaxy predictions and ``metrics/control.json`` with
the same scores as the measure stage (rho, rho_image, rho_null, spearman, slope, rho_truth), every
correlation with its 95% bootstrap interval (``<score>_ci95``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from galaxy_xai import evaluation, io, models, training, units
from stages._common import start

TARGET = "length_scaled"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=Path("data/prepared/bars.csv"))
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--metrics", type=Path, required=True, help="scores (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of curves and predictions")
    args, cfg, log = start("control", parser, argv)

    model_cfg = cfg.control.model
    try:
        models.validate(model_cfg.arch, cfg.images.size_px, model_cfg.weights, head="linear")
        bars = training.read_prepared(args.bars, ["objid", "image_path", "control_split", TARGET])
        test = evaluation.xai_sample(bars, "test", str(args.bars))
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    test = test[test["control_split"] == "test"].reset_index(drop=True)
    if len(test) < 2:
        log.error("%s: fewer than 2 control test galaxies inside the XAI test split", args.bars)
        raise SystemExit(2)

    log.info("training the control model (%s, up to %d epochs) on %s", model_cfg.arch, model_cfg.epochs, TARGET)
    model, result = training.train_from_table(
        bars,
        [TARGET],
        images_cfg=cfg.images,
        model_cfg=model_cfg,
        train_cfg=cfg.train,
        seed=cfg.seed,
        head="linear",
        split_column="control_split",
        curve_path=args.plots / "learning_curve.tsv",
        live_dir=args.plots / "dvclive",
        log=log,
    )
    io.save_model(model, args.out)

    predicted_scaled = training.predict(model, test["image_path"].tolist(), cfg.images)[:, 0]
    predicted_px424 = units.scaled_to_px424(predicted_scaled)
    # A deterministic predictor has no draw-to-draw scatter: both "draws" are the same prediction.
    per_galaxy, scores = evaluation.measurement_summary(
        np.vstack([predicted_px424, predicted_px424]), test, cfg.xai.permutations, np.random.default_rng(cfg.seed),
        cfg.xai.bootstrap,
    )  # fmt: skip
    per_galaxy = per_galaxy.drop(columns=["measured_draw0_px424", "measured_draw1_px424", "error_px424", "error_kpc"])
    io.write_csv(args.plots / "predictions.csv", per_galaxy)
    io.write_json(
        args.metrics,
        {
            **evaluation.finite_or_none(scores),
            "arch": model_cfg.arch,
            "target": TARGET,
            "n_train": int((bars["control_split"] == "train").sum()),
            "n_val": int((bars["control_split"] == "val").sum()),
            "test_rmse_scaled": evaluation.rmse(test[TARGET].to_numpy(), predicted_scaled),
            **result.summary(),
        },
    )
    log.info(
        "control: rho %.3f [%.3f, %.3f], rho_image %.3f [%.3f, %.3f] (null %.3f) on %d test galaxies",
        scores["rho"], *scores["rho_ci95"], scores["rho_image"], *scores["rho_image_ci95"], scores["rho_null"], scores["n"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
