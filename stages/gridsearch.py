"""Stage ``gridsearch``: Table 2, the measurement settings chosen on the validation split.

A setting is (source, estimator, X_input, mask, T_c and T_l or fraction and floor), see
:class:`galaxy_xai.barlength.Choice`. The sources are the saliency methods (each model's maps, the
mean map, the mean of the models' lengths) and the image-only control (the sky-subtracted grey input,
never multiplied by itself); the estimators Algorithm 1 (T_c x T_l) and the m = 2 Fourier amplitude
rule (floors x fractions); the masks none and r90 (the map zeroed outside the galaxy's Petrosian
R90). Every setting of ``xai.grid`` is measured on the validation galaxies and correlated with the catalogue
lengths; the table is long-form, one row per setting, NaN for parameters that do not apply.

The score is ``rho_image`` (424-px pixels, no shared per-galaxy factor, so the choice is not driven
by PETROR90_R); the paper-convention ``rho`` is recorded beside it. Two choices are made, each the
best score among its own rows: ``chosen`` among the saliency sources, ``chosen_image`` among the
image's, so the control gets the same search as the method it controls. T_l is given for the
paper's 224-px maps of the whole image and scaled to the area of our map pixels.

A choice among hundreds of settings on a few hundred galaxies can flip with the noise: each chosen
setting's scores carry their bootstrap intervals, and ``choice_stability`` / ``choice_stability_image``
say how often a bootstrap of the validation galaxies (``xai.bootstrap`` resamples) picks the same
source and the same setting again. ``best_per_estimator`` lists the best setting of every
(source, estimator) pair, which the measure stage scores on the test galaxies.

    python -m stages.gridsearch --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --metrics metrics/gridsearch.json --table plots/gridsearch.csv --table2 metrics/table2.md
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from galaxy_xai import barlength, evaluation, heatmaps, prepared, units
from galaxy_xai.io import write_csv, write_json, write_text
from stages._common import start

SCORE = "rho_image"


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN -> null)."""
    return json.loads(frame.to_json(orient="records", double_precision=15))


def _number(value, fmt: str = "g") -> str:
    """A table cell: the number, or empty where the parameter does not apply (NaN)."""
    return "" if pd.isna(value) else format(value, fmt)


def table2_markdown(best: pd.DataFrame, archs: dict[str, str]) -> str:
    """Table 2 (best validation rho per source) beside the paper's, as Markdown."""
    lines = [
        "| method | paper rho (val) | rho_image | rho (x PETROR90_R) | estimator | mask | X_input | T_c "
        "| T_l (224 px) | T_l (px) | fraction | floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in best.itertuples():
        paper = evaluation.paper_table2_rho(row.method, archs.get(row.method))
        lines.append(
            f"| {row.method} | {'' if paper is None else f'{paper:.2f}'} | {row.rho_image:.3f} | {row.rho:.3f} "
            f"| {row.estimator} | {row.mask} | {row.x_input} | {_number(row.corr_threshold)} "
            f"| {_number(row.len_threshold)} | {_number(row.len_threshold_px)} | {_number(row.fraction)} "
            f"| {_number(row.floor)} |"
        )
    return "\n".join(lines) + "\n"


def choose(
    table: pd.DataFrame, lengths_px424: np.ndarray, rows: np.ndarray, sample: pd.DataFrame, n_boot: int, rng
) -> tuple[dict, dict]:
    """The best setting among ``rows`` (bool, one per table row) by :data:`SCORE`, with its scores'
    bootstrap intervals, and how stable that choice is: (chosen record, choice stability)."""
    positions = np.flatnonzero(rows)
    sub = table.iloc[positions].reset_index(drop=True)
    position = positions[evaluation.choose_setting(sub, SCORE)]
    # The search's score is rho_image; the paper-convention rho of the same setting is reported beside it.
    intervals = evaluation.correlation_scores(
        lengths_px424[:, position], sample["length_px424"], sample["PETROR90_R"], {"rho_image": "rho_image", "rho": "rho"},
        n_boot, rng,
    )  # fmt: skip
    stability = evaluation.choice_stability(sub, lengths_px424[:, positions], sample["length_px424"], n_boot, rng)
    chosen = _records(table.iloc[[position]])[0]
    chosen.pop("n", None)
    chosen["rho_image_ci95"] = evaluation.finite_or_none(intervals["rho_image_ci95"])
    chosen["rho_ci95"] = evaluation.finite_or_none(intervals["rho_ci95"])
    return chosen, stability


def _fmt(value, spec: str = ".3f") -> str:
    """A number of a JSON record for the log; null (NaN, e.g. the score of a constant image) as nan."""
    return format(float("nan") if value is None else value, spec)


def _describe(chosen: dict, stability: dict) -> str:
    """One log line for a chosen setting and the stability of the choice."""
    params = (
        f"T_c={_fmt(chosen['corr_threshold'], 'g')}, T_l={_fmt(chosen['len_threshold'], 'g')} "
        f"({_fmt(chosen['len_threshold_px'], 'g')} px)"
        if chosen["estimator"] == barlength.ALGORITHM1
        else f"fraction={_fmt(chosen['fraction'], 'g')}, floor={_fmt(chosen['floor'], 'g')}"
    )
    lo, hi = chosen["rho_image_ci95"]
    return (
        f"{chosen['method']}, {chosen['estimator']}, mask={chosen['mask']}, x_input={chosen['x_input']}, {params}: "
        f"rho_image={_fmt(chosen['rho_image'])} [{_fmt(lo)}, {_fmt(hi)}], rho={_fmt(chosen['rho'])}; "
        f"chosen again in {100 * stability['method_frequency']:.0f}% (source) / "
        f"{100 * stability['setting_frequency']:.0f}% (setting) of {stability['resamples']} bootstrap resamples"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", default="data/heatmaps", help="folder of <model>.npz saliency maps")
    parser.add_argument("--bars", default="data/prepared/bars.csv", help="prepared bar catalogue")
    parser.add_argument(
        "--metrics", default="metrics/gridsearch.json", help="Table 2 and the chosen settings"
    )
    parser.add_argument("--table", default="plots/gridsearch.csv", help="the full grid, for dvc plots")
    parser.add_argument("--table2", default="metrics/table2.md", help="Table 2 as Markdown")
    args, cfg, log = start("gridsearch", parser, argv)

    sample = prepared.read_bars(args.bars, "val")
    models = list(cfg.models)
    maps, grey = heatmaps.read_heatmaps(args.heatmaps, models, sample["objid"], "val", draw=0)
    map_px, crop_px = grey.shape[-1], cfg.images.crop_px
    grid = cfg.xai.grid
    settings = barlength.grid_settings(
        barlength.source_names(models), grid.estimators, grid.x_input, grid.mask,
        grid.corr_threshold, grid.len_threshold, grid.fourier_fraction, grid.fourier_floor,
    )  # fmt: skip
    log.info(
        "%d validation galaxies, %d models, %d-px maps (R90 = %.1f px); %d settings: %s x %s, masks %s, "
        "T_l %s -> %s px, fractions %s, floors %s; linearity %s",
        len(sample),
        len(models),
        map_px,
        units.r90_map_px(map_px, crop_px),
        len(settings),
        barlength.source_names(models),
        grid.estimators,
        grid.mask,
        grid.len_threshold,
        [barlength.scale_len_threshold(t, map_px, crop_px) for t in grid.len_threshold],
        grid.fourier_fraction,
        grid.fourier_floor,
        cfg.xai.linearity,
    )

    lengths = barlength.setting_lengths(maps, grey, settings, crop_px, cfg.xai.linearity, progress=True)
    lengths_px424 = units.map_px_to_px424(lengths, map_px, crop_px)
    frame = pd.DataFrame([c.record(map_px, crop_px) for c in settings])
    table = evaluation.grid_scores(frame, lengths_px424, sample["length_px424"], sample["PETROR90_R"])
    rng = np.random.default_rng(cfg.seed)
    n_boot = cfg.xai.bootstrap
    is_image = (table["method"] == barlength.IMAGE).to_numpy()
    chosen, stability = choose(table, lengths_px424, ~is_image, sample, n_boot, rng)
    chosen_image, stability_image = choose(table, lengths_px424, is_image, sample, n_boot, rng)
    log.info("chosen: %s", _describe(chosen, stability))
    log.info("chosen for the image-only control: %s", _describe(chosen_image, stability_image))

    write_csv(args.table, table)
    best = evaluation.best_per_method(table, SCORE)
    write_text(args.table2, table2_markdown(best, {m: c.arch for m, c in cfg.models.items()}))
    write_json(
        args.metrics,
        {
            "score": SCORE,
            "linearity": cfg.xai.linearity,
            "map_px": int(map_px),
            "r90_map_px": units.r90_map_px(map_px, crop_px),
            "n": len(sample),
            "settings": len(settings),
            "table2": _records(best),
            "best_per_estimator": _records(evaluation.best_per(table, ["method", "estimator"], SCORE)),
            "chosen": chosen,
            "choice_stability": stability,
            "chosen_image": chosen_image,
            "choice_stability_image": stability_image,
        },
    )
    log.info("wrote %s, %s, %s", args.metrics, args.table, args.table2)


if __name__ == "__main__":
    main()
