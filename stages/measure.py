"""Stage ``measure``: bar lengths of the test galaxies with the chosen settings, the headline rho, and
the controls that say whether the explanation adds anything.

The saliency method: each test galaxy is measured on its two noise draws with the setting chosen by
``gridsearch`` (``chosen``); length = mean of the draws, error = |l1 - l2| averaged within length
deciles (the paper's protocol); lengths in 424-px pixels and h^-1 kpc. Scores: ``rho`` (paper
convention, both lengths times PETROR90_R), ``rho_image``, the permutation null of the paper
convention, Spearman, the weighted slope through the origin and, on the synthetic sky, ``rho_truth``,
``rho_truth_image`` and ``spearman_truth_image`` (the target metric); every correlation with its 95%
bootstrap interval (``<score>_ci95``, ``xai.bootstrap`` resamples of the galaxies).

On the same galaxies (``controls``): the image-only length (the grey input measured with the setting
chosen for it on validation, ``chosen_image``), the classical astronomer's isophote length (the
ellipticity peak of photutils' ellipse fit to the sky-subtracted grey input, within R90) and the m = 2
Fourier length of the light (the image source's Fourier setting chosen on validation; fraction 0.5,
no floor, within R90 if the grid has no Fourier estimator), each with its scores and the paired bootstrap
difference of the saliency method against it. ``estimators``: the best validation setting of every
(source, estimator) pair scored on the test galaxies, the saliency sources on the mean of the two draws.

    python -m stages.measure --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --metrics metrics/barlengths.json --table plots/barlengths.csv
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from galaxy_xai import barlength, evaluation, heatmaps, prepared, profiles, units
from galaxy_xai.io import write_csv, write_json
from stages._common import start

N_DRAWS = 2

ISOPHOTE_WORKERS = min(2, os.cpu_count() or 1)
"""Processes fitting isophotes (photutils fits one image at a time); the lengths do not depend on it."""

FOURIER_LIGHT_DEFAULT = barlength.Choice(
    barlength.IMAGE, False, estimator=barlength.FOURIER, mask=barlength.R90_MASK, fraction=0.5, floor=0.0
)
"""The Fourier length of the light when the grid search has no Fourier setting of the image to choose."""

def _unique(settings: list[barlength.Choice]) -> list[barlength.Choice]:
    return list(dict.fromkeys(settings))


def _setting_json(choice: barlength.Choice, map_px: int, crop_px: int | None) -> dict:
    """The setting's fields and T_l in map pixels, JSON-ready (null where a parameter does not apply)."""
    return evaluation.finite_or_none(choice.record(map_px, crop_px))


def saliency_draws(
    args, cfg, sample: pd.DataFrame, settings: list[barlength.Choice], log
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths in 424-px pixels of the test galaxies for each saliency setting on each noise draw,
    (N_DRAWS, n, len(settings)), and their grey inputs (n, H, W) (the same in every draw's file)."""
    models = list(cfg.models)
    needed = [m for m in models if any(m in s.models_needed(models) for s in settings)]
    out = []
    for draw in range(N_DRAWS):
        maps, grey = heatmaps.read_heatmaps(args.heatmaps, needed, sample["objid"], "test", draw=draw)
        log.info("draw %d: %d test galaxies, %d settings", draw, len(sample), len(settings))
        lengths = barlength.setting_lengths(
            maps, grey, settings, cfg.images.crop_px, cfg.xai.linearity, progress=True
        )
        out.append(units.map_px_to_px424(lengths, grey.shape[-1], cfg.images.crop_px))
    return np.stack(out), grey


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

    models, crop_px = list(cfg.models), cfg.images.crop_px
    try:
        choice = barlength.read_choice(args.gridsearch, models)
        choice_image = barlength.read_choice(args.gridsearch, models, "chosen_image")
        best = barlength.read_settings(args.gridsearch, models)
        sample = prepared.read_bars(args.bars, "test")
        light = [c for c, _ in best if c.method == barlength.IMAGE and c.estimator == barlength.FOURIER]
        fourier_light = light[0] if light else FOURIER_LIGHT_DEFAULT
        saliency = _unique([choice, *(c for c, _ in best if c.method != barlength.IMAGE)])
        image = _unique([choice_image, fourier_light, *(c for c, _ in best if c.method == barlength.IMAGE)])
        draws_px424, grey = saliency_draws(args, cfg, sample, saliency, log)
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    map_px = grey.shape[-1]
    # The grey input is the same on both noise draws: the image sources are measured once.
    image_px424 = units.map_px_to_px424(
        barlength.setting_lengths({}, grey, image, crop_px, cfg.xai.linearity), map_px, crop_px
    )
    r90_px = units.r90_map_px(map_px, crop_px)
    began = time.perf_counter()
    isophote_px424 = units.map_px_to_px424(
        profiles.isophote_bar_lengths(profiles.subtract_sky(grey), r90_px, workers=ISOPHOTE_WORKERS), map_px, crop_px
    )
    log.info(
        "isophote fits of %d galaxies (r_max = R90 = %.1f px, %d processes): %.1f s, %d without a usable isophote",
        len(sample), r90_px, ISOPHOTE_WORKERS, time.perf_counter() - began, int(np.isnan(isophote_px424).sum()),
    )  # fmt: skip

    rng = np.random.default_rng(cfg.seed)
    n_boot = cfg.xai.bootstrap
    chosen = saliency.index(choice)
    per_galaxy, scores = evaluation.measurement_summary(
        draws_px424[:, :, chosen], sample, cfg.xai.permutations, rng, n_boot
    )
    measured = per_galaxy["measured_px424"].to_numpy()
    per_galaxy["image_px424"] = image_px424[:, image.index(choice_image)]
    per_galaxy["isophote_px424"] = isophote_px424
    per_galaxy["fourier_light_px424"] = image_px424[:, image.index(fourier_light)]

    estimators = []
    for setting, record in best:
        lengths = (
            image_px424[:, image.index(setting)]
            if setting.method == barlength.IMAGE
            else draws_px424[:, :, saliency.index(setting)].mean(axis=0)
        )
        row = {"source": setting.method, **_setting_json(setting, map_px, crop_px)}
        del row["method"]
        estimators.append(
            {**row, "val_rho_image": record.get("rho_image"), **evaluation.length_scores(lengths, sample, n_boot, rng)}
        )
    controls = {}
    for name, setting, lengths in (
        ("image", choice_image, per_galaxy["image_px424"].to_numpy()),
        ("isophote", None, isophote_px424),
        ("fourier_light", fourier_light, per_galaxy["fourier_light_px424"].to_numpy()),
    ):
        controls[name] = {
            "setting": None if setting is None else _setting_json(setting, map_px, crop_px),
            **evaluation.length_scores(lengths, sample, n_boot, rng),
            "difference": evaluation.paired_comparison(measured, lengths, sample, n_boot, rng),
        }
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
                **_setting_json(choice, map_px, crop_px),
                "linearity": cfg.xai.linearity,
                "map_px": int(map_px),
                "r90_map_px": r90_px,
                "estimators": estimators,
                "controls": controls,
            }
        ),
    )
    log.info("wrote %s and %s", args.metrics, args.table)


if __name__ == "__main__":
    main()
