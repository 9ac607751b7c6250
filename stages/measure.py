"""Stage ``measure``: bar lengths of the test galaxies with the chosen settings, the headline rho, and
the controls that say whether the explanation adds anything.

The protocol is :mod:`galaxy_xai.measuring`'s: the chosen setting on both noise draws of the stored
maps (``plots/barlengths.csv``: per-galaxy lengths in 424-px pixels and h^-1 kpc), the headline scores
(:func:`galaxy_xai.evaluation.measurement_summary`: ``rho`` in the paper's convention, ``rho_image``,
the permutation nulls, Spearman, the slope through the origin and, on the synthetic sky, the scores
against the true length, each correlation with its 95% bootstrap interval), ``controls`` (image-only,
isophote and Fourier-of-light lengths, the random-weights and permuted-label twins' maps measured
with the chosen setting and, with ``--segmentation``, the U-Net's lengths: each paired against the
saliency lengths), ``estimators``
(the best validation setting of every map source x estimator, scored on the test galaxies) and
``ensemble`` (the chosen setting on each model alone: the Spearman rho of the mean of k models'
lengths for k = 1..M and what twice and infinitely many models would reach, :mod:`galaxy_xai.ensemble`).

Params read: ``seed`` (the permutations' and bootstraps' generator), ``images.crop_px`` (T_l and R90
in map pixels, lengths in 424-px pixels), ``models`` (the model names: whose heatmap files are read),
``xai.grid`` (only through the settings of ``--gridsearch``), ``xai.linearity`` (Algorithm 1's
stopping rule), ``xai.permutations`` and ``xai.bootstrap``.

    python -m stages.measure --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --metrics metrics/barlengths.json --table plots/barlengths.csv
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from galaxy_xai import evaluation, heatmaps, measuring, prepared, segmentation, units
from galaxy_xai.config import MORPHOLOGY, TWINS
from galaxy_xai.io import write_csv, write_json
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", required=True, help="folder of <model>.npz saliency maps")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--gridsearch", required=True, help="output of the gridsearch stage (gridsearch.json)")
    parser.add_argument("--metrics", required=True, help="headline scores (JSON)")
    parser.add_argument("--table", required=True, help="per-galaxy lengths (CSV)")
    parser.add_argument("--segmentation", help="the segment stage's lengths (plots/segmentation/lengths.csv): the ceiling's row")
    args, cfg, log = start("measure", parser, argv)

    models, crop_px, linearity = list(cfg.models), cfg.images.crop_px, cfg.xai.linearity
    with exit_on_bad_input(log):
        settings = measuring.TestSettings.read(args.gridsearch, models)
        sample = prepared.read_bars(args.bars, "test")
        draws_px424, grey = measuring.saliency_draws(
            heatmaps.kind_dir(args.heatmaps, MORPHOLOGY), models, sample["objid"], settings.saliency, crop_px, linearity, log
        )
        # The chosen setting on the twins' maps: what a network that learnt nothing measures.
        twins_px424 = {
            kind: measuring.saliency_draws(
                heatmaps.kind_dir(args.heatmaps, kind), models, sample["objid"], [settings.choice], crop_px, linearity, log
            )[0][:, :, 0].mean(axis=0)
            for kind in TWINS
        }
        # The supervised ceiling: a U-Net trained on the true bar masks (NaN on real data: no masks).
        segmentation_px424 = segmentation.read_lengths(args.segmentation, sample["objid"]) if args.segmentation else None
    map_px = grey.shape[-1]
    # The grey input is the same on both noise draws: the image sources are measured once.
    image_px424 = measuring.image_lengths(grey, settings.image, crop_px, linearity, cfg.xai.integrated_gradients.blur_sigma)
    r90_px = units.r90_map_px(map_px, crop_px)
    began = time.perf_counter()
    isophote_px424 = measuring.isophote_lengths(grey, crop_px)
    log.info(
        "isophote fits of %d galaxies (r_max = R90 = %.1f px, %d processes): %.1f s, %d without a usable isophote",
        len(sample), r90_px, measuring.ISOPHOTE_WORKERS, time.perf_counter() - began, int(np.isnan(isophote_px424).sum()),
    )  # fmt: skip

    rng = np.random.default_rng(cfg.seed)
    n_boot = cfg.xai.bootstrap
    per_galaxy, scores = evaluation.measurement_summary(
        draws_px424[:, :, settings.saliency.index(settings.choice)], sample, cfg.xai.permutations, rng, n_boot
    )
    per_galaxy["image_px424"] = image_px424[:, settings.image.index(settings.choice_image)]
    per_galaxy["isophote_px424"] = isophote_px424
    per_galaxy["fourier_light_px424"] = image_px424[:, settings.image.index(settings.fourier_light)]
    for kind, lengths in twins_px424.items():
        per_galaxy[f"{kind}_px424"] = lengths
    has_ceiling = segmentation_px424 is not None and not np.isnan(segmentation_px424).all()
    if has_ceiling:
        per_galaxy["segmentation_px424"] = segmentation_px424
    estimators = measuring.estimator_scores(settings, draws_px424, image_px424, sample, map_px, crop_px, n_boot, rng)
    controls = measuring.control_scores(
        per_galaxy["measured_px424"].to_numpy(),
        [
            ("image", settings.choice_image, per_galaxy["image_px424"].to_numpy()),
            ("isophote", None, isophote_px424),
            ("fourier_light", settings.fourier_light, per_galaxy["fourier_light_px424"].to_numpy()),
            *((kind, settings.choice, lengths) for kind, lengths in twins_px424.items()),
            *([("segmentation", None, segmentation_px424)] if has_ceiling else []),
        ],
        sample, map_px, crop_px, n_boot, rng,
    )  # fmt: skip
    ensembles = measuring.ensemble_scores(settings, draws_px424, sample, n_boot, rng)
    if has_ceiling and "true_px424" in per_galaxy:
        # Where the explanation sits between a network that learnt nothing and supervised segmentation.
        scores.update(
            evaluation.gap_closed(per_galaxy["measured_px424"], twins_px424["random_weights"], segmentation_px424,
                                  per_galaxy["true_px424"], n_boot, rng)
        )  # fmt: skip
        log.info("gap closed between the random-weights twins and the U-Net: %.2f [%.2f, %.2f]",
                 scores["gap_closed"], *scores["gap_closed_ci95"])  # fmt: skip
    for reference, curve in ensembles.items():
        log.info(
            "ensemble curve against the %s: Spearman %s for 1..%d models; %d models: %.3f [%.3f, %.3f]; "
            "asymptote %.3f [%.3f, %.3f]",
            reference, " / ".join(f"{r:.3f}" for r in curve["spearman"]), len(curve["k"]), curve["doubled_k"],
            curve["doubled"], *curve["doubled_ci95"], curve["asymptote"], *curve["asymptote_ci95"],
        )  # fmt: skip
    log.info(
        "rho=%.3f [%.3f, %.3f] (null %.3f, p95 %.3f, p=%.3g) rho_image=%.3f [%.3f, %.3f] (null p95 %.3f, p=%.3g) "
        "slope=%.3f+-%.3f%s",
        scores["rho"],
        *scores["rho_ci95"],
        scores["rho_null"],
        scores["rho_null_p95"],
        scores["rho_p_value"],
        scores["rho_image"],
        *scores["rho_image_ci95"],
        scores["rho_image_null_p95"],
        scores["rho_image_p_value"],
        scores["slope"],
        scores["slope_err"],
        f" spearman_truth_image={scores['spearman_truth_image']:.3f}" if "spearman_truth_image" in scores else "",
    )
    for name, control in controls.items():
        log.info(
            "control %s: rho_image=%.3f, spearman_truth_image=%s; saliency minus control: %s",
            name,
            control["rho_image"],
            f"{control['spearman_truth_image']:.3f}",
            ", ".join(
                f"{key} {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] {d['verdict']}"
                for key, d in control["difference"].items()
            ),
        )
    write_csv(args.table, per_galaxy)
    write_json(
        args.metrics,
        evaluation.finite_or_none(
            {
                **scores,
                **settings.choice.to_json(map_px, crop_px),
                "linearity": linearity,
                "map_px": int(map_px),
                "r90_map_px": r90_px,
                "estimators": estimators,
                "controls": controls,
                "ensemble": ensembles,
            }
        ),
    )
    log.info("wrote %s and %s", args.metrics, args.table)


if __name__ == "__main__":
    main()
