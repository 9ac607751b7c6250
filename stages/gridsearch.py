"""Stage ``gridsearch``: Table 2, the measurement settings chosen on the validation split.

Every setting of ``xai.grid`` (map sources x estimators x X_input x masks x T_c x T_l or floors x
fractions, :func:`galaxy_xai.bars.gridsearch.config_settings`) is measured on the validation galaxies'
stored maps (draw 0) and scored against the catalogue; the choices and their stability are made by
:func:`galaxy_xai.bars.gridsearch.search`, which documents the science.

Params read: ``seed`` (the bootstrap's generator), ``images.crop_px`` (T_l and R90 in map pixels),
``models`` (the model names: whose heatmap files are read), ``xai.grid`` (``estimators``, ``mask``,
``x_input``, ``corr_threshold``, ``len_threshold``, ``fourier_fraction``, ``fourier_floor``),
``xai.linearity`` (Algorithm 1's stopping rule) and ``xai.bootstrap`` (resamples of the intervals and
of the choice stability). The twins' maps (``--heatmaps``/<twin>/) are measured with every saliency
setting too; a setting is chosen only if its lengths beat those of the twins of ``xai.grid.gate``.

    python -m stages.gridsearch --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --metrics metrics/gridsearch.json --table plots/gridsearch.csv --table2 metrics/table2.md
"""

from __future__ import annotations

import argparse

import numpy as np

from galaxy_xai import units
from galaxy_xai.bars import barlength, gridsearch
from galaxy_xai.bars.algorithm1 import scale_len_threshold
from galaxy_xai.config import MORPHOLOGY, TWINS
from galaxy_xai.data import tables
from galaxy_xai.io import write_csv, write_json, write_text
from galaxy_xai.xai import heatmaps
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", required=True, help="folder of <model>.npz saliency maps")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--metrics", required=True, help="Table 2 and the chosen settings (JSON)")
    parser.add_argument("--table", required=True, help="the full grid, for dvc plots (CSV)")
    parser.add_argument("--table2", required=True, help="Table 2 as Markdown")
    args, cfg, log = start("gridsearch", parser, argv)

    models, crop_px, grid = list(cfg.models), cfg.images.crop_px, cfg.xai.grid
    with exit_on_bad_input(log):
        sample = tables.read_bars(args.bars, "val")
        maps, grey = heatmaps.read_heatmaps(heatmaps.kind_dir(args.heatmaps, MORPHOLOGY), models, sample["objid"], "val", draw=0)
        twin_maps = {
            kind: heatmaps.read_heatmaps(heatmaps.kind_dir(args.heatmaps, kind), models, sample["objid"], "val", draw=0)[0]
            for kind in TWINS
        }
        settings = gridsearch.config_settings(grid, models)
    map_px = grey.shape[-1]
    log.info(
        "%d validation galaxies, %d models, %d-px maps (R90 = %.1f px); %d settings: %s x %s, masks %s, "
        "T_l %s -> %s px, fractions %s, floors %s; linearity %s",
        len(sample),
        len(models),
        map_px,
        units.r90_map_px(map_px, crop_px),
        len(settings),
        barlength.map_sources(models),
        grid.estimators,
        grid.mask,
        grid.len_threshold,
        [scale_len_threshold(t, map_px, crop_px) for t in grid.len_threshold],
        grid.fourier_fraction,
        grid.fourier_floor,
        cfg.xai.linearity,
    )

    result = gridsearch.search(
        maps, grey, settings, sample, crop_px, cfg.xai.linearity, cfg.xai.bootstrap, np.random.default_rng(cfg.seed),
        grid.prefer_map_source, grid.prefer_estimator, twin_maps, grid.gate, cfg.xai.integrated_gradients.blur_sigma,
    )  # fmt: skip
    log.info("%s", gridsearch.gate_text(result.chosen["gate"]))
    log.info("chosen: %s", gridsearch.describe(result.chosen, result.stability))
    log.info("chosen for the image-only control: %s", gridsearch.describe(result.chosen_image, result.stability_image))

    write_csv(args.table, result.table)
    write_text(args.table2, gridsearch.table2_markdown(result.best, {m: c.arch for m, c in cfg.models.items()}))
    write_json(args.metrics, gridsearch.gridsearch_json(result, cfg.xai.linearity, map_px, crop_px))
    log.info("wrote %s, %s, %s", args.metrics, args.table, args.table2)


if __name__ == "__main__":
    main()
