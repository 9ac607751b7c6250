"""Stage ``measure``: bar lengths of the test galaxies with the chosen settings, and the headline rho.

Each test galaxy is measured on its two noise draws with the method and hyperparameters chosen by
``gridsearch``; length = mean of the draws, error = |l1 - l2| averaged within length deciles (the
paper's protocol); lengths in 424-px pixels and h^-1 kpc. Scores: ``rho`` (paper convention, both
lengths times PETROR90_R), ``rho_image``, the permutation null of the paper convention, Spearman,
the weighted slope through the origin and, on the synthetic sky, ``rho_truth``.

    python -m stages.measure --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --metrics metrics/barlengths.json --table plots/barlengths.csv
"""

from __future__ import annotations

import argparse
import json

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

    try:
        chosen = json.loads(open(args.gridsearch, encoding="utf-8").read())["chosen"]
        method, x_input, corr_threshold = (
            chosen["method"],
            bool(chosen["x_input"]),
            float(chosen["corr_threshold"]),
        )
        len_threshold = float(chosen["len_threshold"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(
            f"{args.gridsearch}: expected the gridsearch stage's JSON with a 'chosen' entry ({err})"
        ) from None
    models = list(cfg.models)
    if method not in barlength.method_names(models):
        raise SystemExit(
            f"{args.gridsearch}: chosen method {method!r} is not one of {barlength.method_names(models)}"
        )
    needed = [method] if method in models else models

    sample = evaluation.xai_sample(pd.read_csv(args.bars), "test", args.bars)
    draws_px424 = []
    for draw in range(N_DRAWS):
        maps, grey = barlength.read_heatmaps(args.heatmaps, needed, sample["objid"], "test", draw=draw)
        map_px = grey.shape[-1]
        len_px = barlength.scale_len_threshold(len_threshold, map_px)
        log.info(
            "draw %d: %d test galaxies, %s, x_input=%s, T_c=%g, T_l=%d px, %s",
            draw,
            len(sample),
            method,
            x_input,
            corr_threshold,
            len_px,
            cfg.xai.linearity,
        )
        lengths = barlength.method_lengths(
            maps,
            grey,
            [x_input],
            [corr_threshold],
            [len_px],
            cfg.xai.linearity,
            methods=[method],
            progress=True,
        )[(method, x_input)][:, 0, 0]
        draws_px424.append(units.map_px_to_px424(lengths, map_px, cfg.images.crop_px))

    per_galaxy, scores = evaluation.measurement_summary(
        np.stack(draws_px424), sample, cfg.xai.permutations, np.random.default_rng(cfg.seed)
    )
    log.info(
        "rho=%.3f rho_image=%.3f rho_null=%.3f (p95 %.3f) slope=%.3f+-%.3f%s",
        scores["rho"],
        scores["rho_image"],
        scores["rho_null"],
        scores["rho_null_p95"],
        scores["slope"],
        scores["slope_err"],
        f" rho_truth={scores['rho_truth']:.3f}" if "rho_truth" in scores else "",
    )
    write_csv(args.table, per_galaxy)
    write_json(
        args.metrics,
        {
            **{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in scores.items()},
            "method": method,
            "x_input": x_input,
            "corr_threshold": corr_threshold,
            "len_threshold": len_threshold,
            "len_threshold_px": len_px,
            "linearity": cfg.xai.linearity,
            "map_px": int(map_px),
        },
    )
    log.info("wrote %s and %s", args.metrics, args.table)


if __name__ == "__main__":
    main()
