"""Stage ``explainers``: every explainer on one model and a fixed subset of test galaxies, scored
against the true bar (issue #15).

``explainers.galaxies`` test galaxies with a known bar (a random pick seeded by ``seed``) are
explained by ``explainers.model`` (null: the first of ``models``) with every ``xai.method``
(:data:`galaxy_xai.xai.explainers.EXPLAINERS`, each with the ``xai`` settings: ``xai.target``,
``xai.attribution``, ``xai.smoothgrad``, ``xai.integrated_gradients``, ``xai.occlusion``; noise
seeded by ``seed`` as the heatmap stage's first draw), then again by the model's two twins (stage
``twins``, ``--twins``): every learnt layer re-initialised, and the same recipe trained on the
morphology table's vote fractions permuted among the galaxies (Adebayo et al.'s data randomisation
test). The
first ``explainers.cascade_galaxies`` are also explained after each step of the cascading
randomisation. :mod:`galaxy_xai.xai.explainer_study` scores the maps: relevance mass and
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
import pandas as pd

from galaxy_xai.bars import barlength
from galaxy_xai.config import TWINS
from galaxy_xai.data import tables
from galaxy_xai.data.images import load_images
from galaxy_xai.io import atomic_path, load_model, write_metrics
from galaxy_xai.results import evaluation, explainers_report
from galaxy_xai.xai import explainer_study, explainers
from galaxy_xai.xai.heatmaps import draw_seed
from stages._common import exit_on_bad_input, start

TRUE_BAR = {
    "length_px424": "true_length_px424",
    "axis_ratio": "true_axis_ratio",
    "angle_deg": "true_angle_deg",
    "true_length_px424": "true_length_px424",
}
"""The study's ``bars`` keys (:func:`galaxy_xai.xai.explainer_study.run_study`) -> their bars.csv column."""


def skip(args: argparse.Namespace, log, reason: str) -> None:
    """Write the 'skipped' outputs (so DVC has every output) and say why."""
    log.warning("skipped: %s", reason)
    write_metrics(args.metrics, args.timings, {"skipped": reason})
    with atomic_path(args.table) as tmp:
        Path(tmp).write_text(f"# Explainers against the true bar\n\nSkipped: {reason}\n", encoding="utf-8")
    for figure in (args.figure, args.sanity_figure):
        explainers_report.placeholder_figure(figure, f"explainers stage skipped: {reason}")


def test_sample(bars_path: str, galaxies: int, seed: int) -> pd.DataFrame:
    """``galaxies`` test galaxies with a true bar, a random pick seeded by ``seed``, in catalogue order."""
    test = tables.read_bars(bars_path, "test", columns=("objid", "xai_split", "image_path", *TRUE_BAR.values()))
    test = test[np.isfinite(test["true_length_px424"].to_numpy(dtype=float))].reset_index(drop=True)
    if len(test) < galaxies:
        raise ValueError(f"{bars_path}: {len(test)} test galaxies with a true bar, fewer than explainers.galaxies = {galaxies}")
    rows = np.sort(np.random.default_rng(seed).choice(len(test), galaxies, replace=False))
    return test.iloc[rows].reset_index(drop=True)


def arguments() -> argparse.ArgumentParser:
    """The stage's command line (``--params`` is added by :func:`stages._common.start`)."""
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args, cfg, log = start("explainers", arguments(), argv)

    study_cfg = cfg.explainers
    model_name = study_cfg.model or next(iter(cfg.models))
    with exit_on_bad_input(log):
        if "true_length_px424" not in tables.read_table(args.bars, ["objid", "xai_split"]).columns:
            skip(args, log, f"{args.bars} has no true bars (real data: no truth.csv in {cfg.data.path})")
            return
        choice = barlength.read_choice(args.gridsearch, list(cfg.models))
        model = load_model(args.models / f"{model_name}.keras", compile=False, expected="a model written by the train stage")
        twins = {
            kind: load_model(args.twins / kind / f"{model_name}.keras", compile=False, expected=f"the {kind} twin written by the twins stage")
            for kind in TWINS
        }
        sample = test_sample(args.bars, study_cfg.galaxies, cfg.seed)
    began = time.perf_counter()
    names, skipped = explainer_study.runnable(cfg.xai, cfg.images.size_px, study_cfg.methods)
    for name, why in skipped.items():
        log.warning("explainer %s left out: %s", name, why)
    images = load_images(sample["image_path"].tolist(), cfg.images)
    # The true bar's ellipse (localisation) and the true length the lengths are scored against.
    galaxies = explainer_study.Galaxies(
        images, {key: sample[column].to_numpy(dtype=np.float64) for key, column in TRUE_BAR.items()}, sample["objid"].to_numpy()
    )
    options = explainer_study.StudyOptions(cfg.xai.bootstrap, study_cfg.deletion_steps, names, study_cfg.cascade_galaxies)
    log.info("%s, %d test galaxies, %d explainers; lengths with %s", model_name, len(sample), len(names), choice)
    study = explainer_study.run_study(
        model, galaxies, cfg.xai, choice, cfg.images.crop_px, draw_seed(cfg.seed, model_name, 0), options,
        random_model=twins["random_weights"], permuted_model=twins["permuted_labels"], progress=log.info,
    )  # fmt: skip

    shown = np.argsort(-galaxies.bars["length_px424"], kind="stable")[: study_cfg.figure_galaxies]
    explainers_report.figure(
        args.figure, images, study.maps, galaxies.bars, shown, cfg.images.crop_px,
        f"{model_name}: {len(shown)} of the {len(sample)} test galaxies (longest true bars) under every explainer; "
        "cyan: the true bar ellipse",
    )  # fmt: skip
    explainers_report.sanity_figure(
        args.sanity_figure, study,
        f"{model_name}: sanity checks (cascade on {study_cfg.cascade_galaxies} galaxies; lengths on {len(sample)}; "
        "twins: every weight re-drawn; the recipe trained on permuted labels)",
    )  # fmt: skip
    with atomic_path(args.table) as tmp:
        Path(tmp).write_text(
            explainers_report.markdown(study, model_name, choice, study_cfg.deletion_steps, explainers.explained_score(cfg.xai)), encoding="utf-8"
        )
    verdict = explainers_report.verdict_sentence(study)
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
                "verdict": verdict,
                **study.to_json(),
            }
        ),
    )
    for line in explainers_report.summary_lines(study):
        log.info("%s", line)
    log.info("%s", verdict)
    log.info(
        "%.0f s; wrote %s, %s, %s and %s", time.perf_counter() - began, args.metrics, args.table, args.figure, args.sanity_figure
    )


if __name__ == "__main__":
    main()
