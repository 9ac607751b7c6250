"""Stage ``rotation``: the rotation stability of the measured bar lengths (both linearity rules).

``xai.rotation.galaxies`` test galaxies (a random pick seeded by ``seed``) are turned by each of
``xai.rotation.angles_deg``; every model of ``models`` the chosen method reads explains the turned
image again, with the heatmap stage's explainer (``xai.method``, ``xai.target``,
``xai.attribution``, ``xai.smoothgrad``; noise seeded by ``seed``) on the model inputs
``images.crop_px`` / ``images.size_px``, and the bar is measured with the grid search's settings
under ``abs_pearson`` (the paper's rule) and ``elongation``. Score: the median over galaxies of
(max - min) / mean of the lengths across angles. Control: the same score across as many
independent SmoothGrad noise draws of the unturned galaxy (what the explainer's sampling noise
gives with no rotation at all). Writes ``--metrics`` (JSON) and ``--table`` (per galaxy, rule,
check, angle and draw).

    python -m stages.rotation --models models/morphology --bars data/prepared/bars.csv \
        --gridsearch metrics/gridsearch.json --metrics metrics/rotation.json --table plots/rotation.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from galaxy_xai.bars import barlength, rotation
from galaxy_xai.data import tables
from galaxy_xai.io import load_model, write_csv, write_json
from galaxy_xai.results import evaluation
from stages._common import exit_on_bad_input, start

ELONGATION_TARGET = 0.08
"""Median relative spread the chosen setting should stay under (issue #13: 8% on >= 40 galaxies)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <model>.keras")
    parser.add_argument("--bars", required=True, help="prepared bar catalogue")
    parser.add_argument("--gridsearch", required=True, help="output of the gridsearch stage")
    parser.add_argument("--metrics", required=True, help="stability scores (JSON)")
    parser.add_argument("--table", required=True, help="lengths per galaxy, rule and angle (CSV)")
    args, cfg, log = start("rotation", parser, argv)

    rot = cfg.xai.rotation
    with exit_on_bad_input(log):
        choice = barlength.read_choice(args.gridsearch, list(cfg.models))
        test = tables.read_bars(args.bars, "test")
        needed = choice.models_needed(list(cfg.models))
        missing = [
            str(args.models / f"{n}.keras") for n in needed if not (args.models / f"{n}.keras").is_file()
        ]
        if missing:
            raise ValueError(f"model file(s) not found: {', '.join(missing)} (run the train stage first)")
        models = {n: load_model(args.models / f"{n}.keras", compile=False) for n in needed}
    sample = test.iloc[rotation.pick_rows(len(test), rot.galaxies, cfg.seed)].reset_index(drop=True)
    log.info(
        "%d test galaxies x angles %s deg; setting %s",
        len(sample),
        rot.angles_deg,
        choice,
    )
    objids = sample["objid"].to_numpy()
    paths = sample["image_path"].tolist()
    n_angles = len(rot.angles_deg)
    checks = {
        "rotation": rotation.rotation_lengths(models, paths, objids, cfg, choice),
        "noise": rotation.noise_lengths(models, paths, objids, cfg, choice, draws=n_angles),
    }
    spread = {check: {rule: evaluation.median_relative_spread(v) for rule, v in lengths.items()} for check, lengths in checks.items()}
    write_csv(args.table, rotation.lengths_table(objids, rot.angles_deg, checks))
    write_json(
        args.metrics,
        {
            "galaxies": len(sample),
            "angles_deg": list(rot.angles_deg),
            "median_relative_spread": spread["rotation"],
            "noise_relative_spread": spread["noise"],
            "elongation_target": ELONGATION_TARGET,
            **evaluation.finite_or_none(choice.record(cfg.images.size_px, cfg.images.crop_px)),
        },
    )
    log.info(
        "median relative spread over %d angles: %s (over %d noise draws, unturned: %s); wrote %s and %s",
        n_angles,
        ", ".join(f"{r} {v:.1%}" for r, v in spread["rotation"].items()),
        n_angles,
        ", ".join(f"{r} {v:.1%}" for r, v in spread["noise"].items()),
        args.metrics,
        args.table,
    )


if __name__ == "__main__":
    main()
