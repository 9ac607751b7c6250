"""Stage ``true_axis``: how much of the bar's length the maps hold, measured along the TRUE bar axis.

The diagnostic of :mod:`galaxy_xai.bars.true_axis`: the explanation's maps (the grid search's chosen
map source and X_input), the random-weights and permuted-label twins' maps and the image-only
control's source, each measured along every galaxy's true bar axis, the strip and fraction chosen on
the validation galaxies, scored on the test galaxies against the true length and paired against its
own estimator's lengths (``plots/barlengths.csv``, the measure stage's) and against the explanation.
On real data (no true bar angles in bars.csv) it writes ``{"skipped": reason}`` and exits 0.

Params read: ``seed`` (the bootstraps' generator), ``images.crop_px`` (R90 in map pixels), ``models``
(whose heatmap files are read), ``xai.integrated_gradients.blur_sigma`` (the high-pass image source,
if the image control chose it) and ``xai.bootstrap``.

    python -m stages.true_axis --heatmaps data/heatmaps --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --barlengths plots/barlengths.csv \
        --metrics metrics/true_axis.json --markdown metrics/true_axis.md
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from galaxy_xai import units
from galaxy_xai.bars import barlength, true_axis
from galaxy_xai.bars.protocol import N_DRAWS
from galaxy_xai.config import MORPHOLOGY, TWINS, Config
from galaxy_xai.data import tables
from galaxy_xai.io import write_json, write_text
from galaxy_xai.xai import heatmaps
from stages._common import exit_on_bad_input, start

TRUTH_COLUMNS = ("true_length_px424", "true_angle_deg")
"""bars.csv columns the diagnostic needs (synthetic sky only)."""

OWN_COLUMNS = {"explanation": "measured_px424", **{kind: f"{kind}_px424" for kind in TWINS}, "image": "image_px424"}
"""The measure stage's column (plots/barlengths.csv) of each row's own estimator."""


def arguments() -> argparse.ArgumentParser:
    """The stage's command line (``--params`` is added by :func:`stages._common.start`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", required=True, help="folder of <kind>/<model>.npz saliency maps")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--gridsearch", required=True, help="output of the gridsearch stage (gridsearch.json)")
    parser.add_argument("--barlengths", required=True, help="the measure stage's per-galaxy lengths (barlengths.csv)")
    parser.add_argument("--metrics", required=True, help="the diagnostic's table (JSON)")
    parser.add_argument("--markdown", required=True, help="the same as a Markdown section (report.md includes it)")
    return parser


def own_lengths(path: str, objids: np.ndarray) -> dict[str, np.ndarray]:
    """Each row's own-estimator lengths (n,) for the test galaxies ``objids``, in that order, from the
    measure stage's table; ValueError naming the file and what is missing."""
    table = tables.read_table(path, ("objid", *OWN_COLUMNS.values()))
    position = pd.Index(table["objid"].astype(np.int64))
    if not position.is_unique:
        raise ValueError(f"{path}: an objid repeats; expected one row per test galaxy")
    where = position.get_indexer(objids)
    if (where < 0).any():
        raise ValueError(f"{path}: no row for test galaxy objid {int(objids[where < 0][0])} (rerun the measure stage)")
    return {name: table[column].to_numpy(dtype=np.float64)[where] for name, column in OWN_COLUMNS.items()}


def split_axis_lengths(args: argparse.Namespace, cfg: Config, settings, sample: pd.DataFrame, split: str) -> dict[str, np.ndarray]:
    """{row: true-axis lengths (n, n_half_widths, n_fractions)} of one split's galaxies: the models' maps
    and each twin's with the chosen setting (the test split averaged over both noise draws, as the measure
    stage does), and the image with the image control's setting."""
    choice, choice_image = settings
    objids, angle_deg = sample["objid"].to_numpy(), sample["true_angle_deg"].to_numpy(dtype=np.float64)
    out = {}
    for kind in (MORPHOLOGY, *TWINS):
        per_draw = []
        for draw in range(1 if split == "val" else N_DRAWS):
            maps, grey = heatmaps.read_heatmaps(heatmaps.kind_dir(args.heatmaps, kind), list(cfg.models), objids, split, draw)
            r90_px = units.r90_map_px(grey.shape[-1], cfg.images.crop_px)
            per_draw.append(true_axis.source_axis_lengths(maps, grey, choice, angle_deg, r90_px))
        out["explanation" if kind == MORPHOLOGY else kind] = np.mean(per_draw, axis=0)
    # The grey input is the same in every heatmap file: the image is measured once.
    blur_px = cfg.xai.integrated_gradients.blur_sigma
    out["image"] = true_axis.source_axis_lengths({}, grey, choice_image, angle_deg, r90_px, blur_px)
    return out


def main(argv: list[str] | None = None) -> None:
    args, cfg, log = start("true_axis", arguments(), argv)
    models = list(cfg.models)
    with exit_on_bad_input(log):
        bars = tables.read_table(args.bars, ("objid", "xai_split"))
        missing = [c for c in TRUTH_COLUMNS if c not in bars or not bars[c].notna().any()]
        if missing:
            reason = f"{args.bars} has no {', '.join(missing)} (real data): no true bar axes to measure along"
            log.warning("skipped: %s", reason)
            write_json(args.metrics, {"skipped": reason})
            write_text(args.markdown, "")
            return
        settings = barlength.read_choice(args.gridsearch, models), barlength.read_choice(args.gridsearch, models, "chosen_image")
        splits = {split: tables.read_bars(args.bars, split, ("objid", "xai_split", *TRUTH_COLUMNS)) for split in ("val", "test")}
        own = own_lengths(args.barlengths, splits["test"]["objid"].to_numpy(dtype=np.int64))
        lengths = {split: split_axis_lengths(args, cfg, settings, sample, split) for split, sample in splits.items()}
    log.info(
        "%d validation and %d test galaxies measured along their true axes (%s maps, both twins', the %s image)",
        *(len(s) for s in splits.values()), settings[0].map_source, settings[1].map_source,
    )  # fmt: skip
    choice, choice_image = settings
    sources = {
        name: true_axis.AxisSource(choice_image if name == "image" else choice, lengths["val"][name], lengths["test"][name], own[name])
        for name in own
    }
    truth = {split: sample["true_length_px424"].to_numpy(dtype=np.float64) for split, sample in splits.items()}
    result = {
        "n_val": len(truth["val"]),
        "n_test": len(truth["test"]),
        "fractions": list(true_axis.FRACTIONS),
        "half_widths_px": list(true_axis.HALF_WIDTHS_PX),
        **true_axis.true_axis_rows(sources, truth["val"], truth["test"], cfg.xai.bootstrap, np.random.default_rng(cfg.seed)),
    }
    for name, row in result["rows"].items():
        log.info(
            "%s: along the true axis %.3f [%.2f, %.2f] (half width %g px, fraction %g); its own estimator %.3f",
            name, row["spearman_truth"], *row["spearman_truth_ci95"], row["half_width_px"], row["fraction"],
            row["own_estimator_spearman_truth"],
        )  # fmt: skip
    write_json(args.metrics, result)
    write_text(args.markdown, true_axis.true_axis_markdown(result))
    log.info("wrote %s and %s", args.metrics, args.markdown)


if __name__ == "__main__":
    main()
