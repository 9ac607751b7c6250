"""Stage ``measure``: bar lengths of the test galaxies with the chosen settings, and the headline rho.

Each test galaxy is measured on its two noise draws with the method and hyperparameters chosen by
``gridsearch``; length = mean of the draws, error = |l1 - l2| averaged within length deciles (the
paper's protocol); lengths in 424-px pixels and h^-1 kpc. Scores: ``rho`` (paper convention, both
lengths times PETROR90_R), ``rho_image``, the permutation null of the paper convention, Spearman,
the weighted slope through the origin and, on the synthetic sky, ``rho_truth``; every correlation
with its 95% bootstrap interval (``<score>_ci95``, ``xai.bootstrap`` resamples of the galaxies).

    python -m stages.measure --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --metrics metrics/barlengths.json --table plots/barlengths.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from galaxy_xai import barlength, evaluation, units
from galaxy_xai.io import write_csv, write_json
from stages._common import start

N_DRAWS = 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", default="data/heatmaps", help="folder of <model>.npz saliency maps")
    parser.add_argument("--bars", default="data/prepared/bars.csv", help="prepared bar catalogue")
    parser.add_argument(
        "--gridsearch", default="metrics/gridsearch.json", help="output of the gridsearch stage"
    )
    parser.add_argument("--metrics", default="metrics/barlengths.json", help="headline scores")
    parser.add_argument("--table", default="plots/barlengths.csv", help="per-galaxy lengths")
    args, cfg, log = start("measure", parser, argv)

    models = list(cfg.models)
    try:
        choice = barlength.read_choice(args.gridsearch, models)
        sample = evaluation.xai_sample(pd.read_csv(args.bars), "test", args.bars)
        draws_px424 = []
        for draw in range(N_DRAWS):
            maps, grey = barlength.read_heatmaps(
                args.heatmaps, choice.models_needed(models), sample["objid"], "test", draw=draw
            )
            map_px = grey.shape[-1]
            log.info(
                "draw %d: %d test galaxies, %s, x_input=%s, T_c=%g, T_l=%d px, %s",
                draw,
                len(sample),
                choice.method,
                choice.x_input,
                choice.corr_threshold,
                choice.len_threshold_px(map_px, cfg.images.crop_px),
                cfg.xai.linearity,
            )
            lengths = barlength.measure_choice(
                maps, grey, choice, cfg.images.crop_px, cfg.xai.linearity, progress=True
            )
            draws_px424.append(units.map_px_to_px424(lengths, map_px, cfg.images.crop_px))
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None

    per_galaxy, scores = evaluation.measurement_summary(
        np.stack(draws_px424), sample, cfg.xai.permutations, np.random.default_rng(cfg.seed), cfg.xai.bootstrap
    )
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
        f" rho_truth={scores['rho_truth']:.3f}" if "rho_truth" in scores else "",
    )
    write_csv(args.table, per_galaxy)
    write_json(
        args.metrics,
        {
            **evaluation.finite_or_none(scores),
            "method": choice.method,
            "x_input": choice.x_input,
            "corr_threshold": choice.corr_threshold,
            "len_threshold": choice.len_threshold,
            "len_threshold_px": choice.len_threshold_px(map_px, cfg.images.crop_px),
            "linearity": cfg.xai.linearity,
            "map_px": int(map_px),
        },
    )
    log.info("wrote %s and %s", args.metrics, args.table)


if __name__ == "__main__":
    main()
