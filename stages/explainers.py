"""Stage ``explainers``: every explainer on one model and a fixed subset of test galaxies, scored
against the true bar (issue #15).

``explainers.galaxies`` test galaxies with a known bar (a random pick seeded by ``seed``) are
explained by ``explainers.model`` (null: the first of ``models``) with every ``xai.method``
(:data:`galaxy_xai.explainers.EXPLAINERS`, each with the ``xai`` settings: ``xai.target``,
``xai.attribution``, ``xai.smoothgrad``, ``xai.integrated_gradients``, ``xai.occlusion``; noise
seeded by ``seed`` as the heatmap stage's first draw), then again by the model's two twins (stage
``twins``, ``--twins``): every learnt layer re-initialised, and the same recipe trained on the
morphology table's vote fractions permuted among the galaxies (Adebayo et al.'s data randomisation
test). The
first ``explainers.cascade_galaxies`` are also explained after each step of the cascading
randomisation. :mod:`galaxy_xai.explainer_study` scores the maps: relevance mass and
rank accuracy inside the true bar ellipse (truth.csv), the pointing game, deletion / insertion areas
(``explainers.deletion_steps``), the randomised model's map similarity, and the Spearman rho of the
Algorithm 1 lengths (the grid search's chosen setting, ``xai.linearity``) against the true length
for both models, each with its 95% bootstrap interval (``xai.bootstrap``). Model inputs are
``images.crop_px`` / ``images.size_px``.

Writes ``--metrics`` (JSON; the seconds each explainer took go to ``--timings``), ``--table`` (Markdown), ``--figure`` (``explainers.figure_galaxies``
galaxies, the longest bars of the pick, under every explainer with the true bar ellipse) and
``--sanity-figure`` (the cascade's similarity curves and the length rhos of the trained, randomised
and permuted-label models). On real
data (no ``truth.csv``) nothing can be scored: the stage writes a metrics file saying so, a
placeholder figure, and exits 0.

    python -m stages.explainers --models models/morphology --bars data/prepared/bars.csv \
        --twins models --gridsearch metrics/gridsearch.json \
        --metrics metrics/explainers.json --timings metrics/timings/explainers.json --table metrics/explainers.md \
        --figure plots/explainers.png --sanity-figure plots/explainers_sanity.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from galaxy_xai import barlength, catalogue, evaluation, explainer_study, prepared
from galaxy_xai.config import TWINS
from galaxy_xai.heatmaps import draw_seed
from galaxy_xai.images import load_images
from galaxy_xai.io import atomic_path, load_model, write_metrics
from stages._common import exit_on_bad_input, start


def skip(args: argparse.Namespace, log, reason: str) -> None:
    """Write the 'skipped' outputs (so DVC has every output) and say why."""
    log.warning("skipped: %s", reason)
    write_metrics(args.metrics, args.timings, {"skipped": reason})
    with atomic_path(args.table) as tmp:
        Path(tmp).write_text(f"# Explainers against the true bar\n\nSkipped: {reason}\n", encoding="utf-8")
    for figure in (args.figure, args.sanity_figure):
        explainer_study.placeholder_figure(figure, f"explainers stage skipped: {reason}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <model>.keras")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--twins", type=Path, required=True, help="folder of the twins' folders (random_weights/, permuted_labels/)")
    parser.add_argument("--gridsearch", required=True, help="output of the gridsearch stage (gridsearch.json)")
    parser.add_argument("--metrics", required=True, help="scores per explainer (JSON)")
    parser.add_argument("--timings", required=True, help="seconds per explainer and in all (JSON)")
    parser.add_argument("--table", required=True, help="the table and the verdict (Markdown)")
    parser.add_argument("--figure", required=True, help="galaxies under every explainer (PNG)")
    parser.add_argument("--sanity-figure", required=True, help="cascade and data randomisation (PNG)")
    args, cfg, log = start("explainers", parser, argv)

    study_cfg = cfg.explainers
    model_name = study_cfg.model or next(iter(cfg.models))
    with exit_on_bad_input(log):
        truth = catalogue.read_truth(cfg.data.path)
        if truth is None:
            skip(args, log, f"no truth.csv in {cfg.data.path} (real data): the true bars are unknown")
            return
        choice = barlength.read_choice(args.gridsearch, list(cfg.models))
        test = prepared.read_bars(args.bars, "test", columns=("objid", "xai_split", "image_path"))
        model_file = args.models / f"{model_name}.keras"
        if not model_file.is_file():
            raise ValueError(f"model file not found: {model_file} (run the train stage first)")
        bars = truth[truth["set"] == "gz2"].set_index("id")
        test = test[test["objid"].isin(bars.index)]
        test = test.assign(
            length_px424=bars.loc[test["objid"], "bar_length_px424"].to_numpy(),
            axis_ratio=bars.loc[test["objid"], "bar_axis_ratio"].to_numpy(),
            angle_deg=bars.loc[test["objid"], "bar_angle_deg"].to_numpy(),
        )
        test = test[np.isfinite(test["length_px424"].to_numpy(dtype=float))].reset_index(drop=True)
        if len(test) < study_cfg.galaxies:
            raise ValueError(
                f"{args.bars}: {len(test)} test galaxies with a true bar, fewer than explainers.galaxies = {study_cfg.galaxies}"
            )
    began = time.perf_counter()
    rows = np.sort(np.random.default_rng(cfg.seed).choice(len(test), study_cfg.galaxies, replace=False))
    sample = test.iloc[rows].reset_index(drop=True)
    names, skipped = explainer_study.runnable(cfg.xai, cfg.images.size_px, study_cfg.methods)
    for name, why in skipped.items():
        log.warning("explainer %s left out: %s", name, why)
    with exit_on_bad_input(log):
        model = load_model(args.models / f"{model_name}.keras", compile=False)
        twins = {
            kind: load_model(args.twins / kind / f"{model_name}.keras", compile=False, expected=f"the {kind} twin written by the twins stage")
            for kind in TWINS
        }
    images = load_images(sample["image_path"].tolist(), cfg.images)
    bar_geometry = {
        "length_px424": sample["length_px424"].to_numpy(dtype=np.float64),
        "axis_ratio": sample["axis_ratio"].to_numpy(dtype=np.float64),
        "angle_deg": sample["angle_deg"].to_numpy(dtype=np.float64),
        # the true length the lengths are scored against: truth.csv's, as bars.csv's true_length_px424
        "true_length_px424": sample["length_px424"].to_numpy(dtype=np.float64),
    }
    log.info("%s, %d test galaxies, %d explainers; lengths with %s", model_name, len(sample), len(names), choice)
    study = explainer_study.run_study(
        model, images, bar_geometry, cfg.xai, choice, cfg.images.crop_px,
        seed=draw_seed(cfg.seed, model_name, 0), keys=sample["objid"].to_numpy(),
        n_boot=cfg.xai.bootstrap, deletion_steps=study_cfg.deletion_steps, names=names,
        cascade=study_cfg.cascade_galaxies, random_model=twins["random_weights"], permuted_model=twins["permuted_labels"],
        progress=log.info,
    )  # fmt: skip
    shown = np.argsort(-bar_geometry["length_px424"], kind="stable")[: study_cfg.figure_galaxies]
    explainer_study.figure(
        args.figure, images, study["maps"], bar_geometry, shown, cfg.images.crop_px,
        f"{model_name}: {len(shown)} of the {len(sample)} test galaxies (longest true bars) under every explainer; "
        "cyan: the true bar ellipse",
    )  # fmt: skip
    explainer_study.sanity_figure(
        args.sanity_figure, study,
        f"{model_name}: sanity checks (cascade on {study_cfg.cascade_galaxies} galaxies; lengths on {len(sample)}; "
        "twins: every weight re-drawn; the recipe trained on permuted labels)",
    )  # fmt: skip
    text = explainer_study.markdown(study, model_name, choice, study_cfg.deletion_steps)
    with atomic_path(args.table) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    write_metrics(
        args.metrics,
        args.timings,
        evaluation.finite_or_none(
            {
                "model": model_name,
                "objids": sample["objid"].astype(str).tolist(),
                "left_out": skipped,
                "setting": choice.to_json(cfg.images.size_px, cfg.images.crop_px),
                "linearity": cfg.xai.linearity,
                "deletion_steps": study_cfg.deletion_steps,
                "cascade_galaxies": study_cfg.cascade_galaxies,
                "seconds": time.perf_counter() - began,
                "verdict": explainer_study.verdict_sentence(study),
                **explainer_study.to_json(study),
            }
        ),
    )
    for name, r in study["explainers"].items():
        log.info(
            "%-22s mass %.2f rank %.2f pointing %.2f del %.3f ins %.3f random spearman %.2f ssim %.2f rho %.2f (random %.2f)",
            name, r["mass_accuracy"]["mean"], r["rank_accuracy"]["mean"], r["pointing_game"]["mean"],
            r["deletion_auc"]["mean"], r["insertion_auc"]["mean"], r["spearman_abs"]["mean"], r["ssim"]["mean"],
            r["spearman_truth"]["rho"], r["spearman_truth_random"]["rho"],
        )  # fmt: skip
    log.info("%s", explainer_study.verdict_sentence(study))
    log.info(
        "%.0f s; wrote %s, %s, %s and %s", time.perf_counter() - began, args.metrics, args.table, args.figure, args.sanity_figure
    )


if __name__ == "__main__":
    main()
