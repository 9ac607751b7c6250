"""Stage ``measure``: bar lengths of the test galaxies with the chosen settings, the headline rho, and
the controls that say whether the explanation adds anything.

The protocol is :mod:`galaxy_xai.bars.protocol`'s: the chosen setting on both noise draws of the stored
maps (``plots/barlengths.csv``: per-galaxy lengths in 424-px pixels and h^-1 kpc), the headline scores
(:func:`galaxy_xai.results.evaluation.measurement_summary`: ``rho`` in the paper's convention, ``rho_image``,
the permutation nulls, Spearman, the slope through the origin and, on the synthetic sky, the scores
against the true length, each correlation with its 95% bootstrap interval), ``controls`` (image-only,
isophote and Fourier-of-light lengths, the random-weights and permuted-label twins' maps measured
with the chosen setting and, with ``--segmentation``, the U-Net's lengths: each paired against the
saliency lengths), ``estimators``
(the best validation setting of every map source x estimator, scored on the test galaxies) and
``ensemble`` (the chosen setting on each model alone: the Spearman rho of the mean of k models'
lengths for k = 1..M and what twice and infinitely many models would reach, :mod:`galaxy_xai.results.ensemble`).

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

from galaxy_xai import units
from galaxy_xai.bars import protocol
from galaxy_xai.config import MORPHOLOGY, TWINS
from galaxy_xai.data import tables
from galaxy_xai.io import write_csv, write_json
from galaxy_xai.models import segmentation
from galaxy_xai.results import evaluation
from galaxy_xai.xai import heatmaps
from stages._common import cpu_workers, exit_on_bad_input, start


def arguments() -> argparse.ArgumentParser:
    """The stage's command line (``--params`` is added by :func:`stages._common.start`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", required=True, help="folder of <model>.npz saliency maps")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--gridsearch", required=True, help="output of the gridsearch stage (gridsearch.json)")
    parser.add_argument("--metrics", required=True, help="headline scores (JSON)")
    parser.add_argument("--table", required=True, help="per-galaxy lengths (CSV)")
    parser.add_argument("--segmentation", help="the segment stage's lengths (plots/segmentation/lengths.csv): the ceiling's row")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, cfg, log = start("measure", arguments(), argv)

    models, crop_px, linearity = list(cfg.models), cfg.images.crop_px, cfg.xai.linearity
    with exit_on_bad_input(log):
        settings = protocol.TestSettings.read(args.gridsearch, models)
        sample = tables.read_bars(args.bars, "test")
        draws_px424, grey = protocol.saliency_draws(
            heatmaps.kind_dir(args.heatmaps, MORPHOLOGY), models, sample["objid"], settings.saliency, crop_px, linearity, log
        )
        # The chosen setting on the twins' maps: what a network that learnt nothing measures.
        twins_px424 = {
            kind: protocol.saliency_draws(
                heatmaps.kind_dir(args.heatmaps, kind), models, sample["objid"], [settings.choice], crop_px, linearity, log
            )[0][:, :, 0].mean(axis=0)
            for kind in TWINS
        }
        # The supervised ceiling: a U-Net trained on the true bar masks (NaN on real data: no masks).
        segmentation_px424 = segmentation.read_lengths(args.segmentation, sample["objid"]) if args.segmentation else None
    map_px = grey.shape[-1]
    # The grey input is the same on both noise draws: the image sources are measured once.
    image_px424 = protocol.image_lengths(grey, settings.image, crop_px, linearity, cfg.xai.integrated_gradients.blur_sigma)
    r90_px = units.r90_map_px(map_px, crop_px)
    began, workers = time.perf_counter(), cpu_workers()
    isophote_px424 = protocol.isophote_lengths(grey, crop_px, workers)
    log.info(
        "isophote fits of %d galaxies (r_max = R90 = %.1f px, %d processes): %.1f s, %d without a usable isophote",
        len(sample), r90_px, workers, time.perf_counter() - began, int(np.isnan(isophote_px424).sum()),
    )  # fmt: skip

    lengths = protocol.TestLengths(draws_px424, image_px424, isophote_px424, twins_px424, segmentation_px424, map_px)
    per_galaxy, scores, details = protocol.score_lengths(
        settings, lengths, sample, crop_px, cfg.xai.permutations, cfg.xai.bootstrap, np.random.default_rng(cfg.seed)
    )
    for line in protocol.summary_lines(scores, details):
        log.info("%s", line)
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
                **details,
            }
        ),
    )
    log.info("wrote %s and %s", args.metrics, args.table)


if __name__ == "__main__":
    main()
