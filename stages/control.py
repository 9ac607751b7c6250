"""Stage ``control``: the paper's baseline CNN (rho = 0.59), cross-fitted over the whole bar catalogue.

A CNN of ``control.model`` (Xception family; one linear output) learns ``length_scaled`` (the catalogue's
length; with ``control.target: truth`` the true length, synthetic sky only) directly from the image, with the morphology models' augmentation and early stopping. ``control.folds`` such models
are trained: fold k's on the galaxies outside fold k (80% to train, 20% to stop early), and it predicts
fold k (``splits.control_folds`` / ``splits.fold_roles``), so every galaxy is predicted by a
model that never saw it and the control is measured on every XAI test galaxy, as the saliency method
is. Fold 0 is the paper's single 64/16/20 split: its test fold is the control test split that
``prepare`` draws inside the XAI test split, so fold 0's model is the paper's one model, reported on
its own as ``paper_split``.

Writes one model per fold (``--out``/fold<k>.keras), one learning curve per fold
(``--plots``/fold<k>/learning_curve.tsv), every bar galaxy's out-of-fold prediction
(``--plots``/predictions.csv) and ``--metrics``: the measure stage's scores (rho, rho_image, rho_null,
spearman, slope, rho_truth, ..., every correlation with its 95% bootstrap interval ``<score>_ci95``) on
all XAI test galaxies, ``paper_split`` with the same scores on fold 0, and a training summary per fold;
the training times and speeds go to ``--timings`` instead (:func:`galaxy_xai.io.write_metrics`).
Params: ``seed`` (the folds, the nulls and bootstraps), ``control`` (``model``: ``arch``, ``epochs``,
``batch_size``, ``learning_rate``, ``weights``; ``folds``, ``target``), ``images`` and ``train`` (as the train
stage), ``xai.permutations`` and ``xai.bootstrap``. The scoring is :mod:`galaxy_xai.models.control`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from galaxy_xai import distribute, io
from galaxy_xai.data import splits, tables
from galaxy_xai.models import architectures, control, training
from galaxy_xai.results import evaluation
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, required=True, help="prepared bar catalogue")
    parser.add_argument("--out", type=Path, required=True, help="folder of the trained models, fold<k>.keras")
    parser.add_argument("--metrics", type=Path, required=True, help="scores (JSON)")
    parser.add_argument("--timings", type=Path, required=True, help="training times and speeds (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of curves and predictions")
    args, cfg, log = start("control", parser, argv)

    model_cfg, n_folds = cfg.control.model, cfg.control.folds
    with exit_on_bad_input(log):
        architectures.validate(model_cfg.arch, cfg.images.size_px, model_cfg.weights, head="linear")
        bars = tables.read_bars(args.bars, columns=["objid", "image_path", "control_split", control.TARGET])
        target, bars = control.target_lengths(bars, cfg.control.target, str(args.bars))
        samples = {split: tables.xai_rows(bars, split, str(args.bars)) for split in splits.XAI_SPLITS}
        if bars["objid"].duplicated().any():
            raise ValueError(f"{args.bars}: objid {bars.loc[bars['objid'].duplicated(), 'objid'].iloc[0]} repeated")
        objids, control_split = bars["objid"].to_numpy(), bars["control_split"].to_numpy()
        fold_of = splits.control_folds(objids, control_split, n_folds, cfg.seed)
        roles = [splits.fold_roles(objids, control_split, fold_of, k, cfg.seed) for k in range(n_folds)]
        paper = control.paper_split_rows(samples["test"], objids, fold_of, str(args.bars))

    for stale in args.out.glob("fold*.keras"):  # a previous run with more folds
        stale.unlink()
    log.info(
        "cross-fitting %d control models (%s, up to %d epochs) on %s of %d bar galaxies",
        n_folds, model_cfg.arch, model_cfg.epochs, target, len(bars),
    )  # fmt: skip
    train_cfg = dataclasses.replace(cfg.train, distribute=distribute.on_one_machine(cfg.train.distribute))
    if train_cfg.distribute != cfg.train.distribute:
        log.info("train.distribute resolves to multi_worker: the control CNNs train on one device")
    predicted_scaled, results = training.cross_fit(
        bars,
        [target],
        roles,
        images_cfg=cfg.images,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        seed=training.model_seed(cfg.train, model_cfg),  # the training runs follow train.seed; the folds follow seed
        head="linear",
        curve_dir=args.plots,
        on_model=lambda k, model: io.save_model(model, args.out / f"fold{k}.keras"),
        log=log,
    )
    per_galaxy, metrics = control.cross_fit_scores(
        bars, samples, paper, fold_of, roles, results, predicted_scaled[:, 0],
        arch=model_cfg.arch, permutations=cfg.xai.permutations, n_boot=cfg.xai.bootstrap, seed=cfg.seed, target=target,
    )  # fmt: skip
    io.write_csv(args.plots / "predictions.csv", per_galaxy)
    io.write_metrics(args.metrics, args.timings, evaluation.finite_or_none(metrics))
    scores, paper_scores = metrics, metrics["paper_split"]
    log.info(
        "control, cross-fit: rho %.3f [%.3f, %.3f], rho_image %.3f [%.3f, %.3f] (null %.3f) on %d XAI test galaxies; "
        "paper split (fold 0): rho_image %.3f [%.3f, %.3f] on %d",
        scores["rho"], *scores["rho_ci95"], scores["rho_image"], *scores["rho_image_ci95"], scores["rho_null"], scores["n"],
        paper_scores["rho_image"], *paper_scores["rho_image_ci95"], paper_scores["n"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
