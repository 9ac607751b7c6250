"""Stage ``segment``: the segmentation reference, a U-Net trained on the true bar masks (Walmsley & Spindler 2023).

The upper reference for the bar lengths: the best system doing the same job. A small U-Net
(:mod:`galaxy_xai.models.unet`, ``segmentation.filters``) learns the true bar ellipses
(:func:`galaxy_xai.xai.localisation.bar_masks`, from truth.csv) of the labelled galaxies with a bar: the
morphology train split to learn from, the other labelled galaxies (val and test) to stop early on.
It then segments the bar catalogue's XAI val and test galaxies, which it never saw, and each mask's
length (:func:`galaxy_xai.models.segmentation.mask_lengths_px424`) is scored on the test galaxies as the
control CNN's are: Spearman and Pearson against the true length and the catalogue's, each with its
95% bootstrap interval (``xai.bootstrap`` resamples, seeded by ``seed``), and the masks' mean Dice.

Writes ``--out``/unet.keras, ``--plots``/lengths.csv (objid, split, length_px424 of every XAI val and
test galaxy), ``--plots``/learning_curve.tsv and DVCLive's ``dvclive/``, ``--metrics`` (JSON) and the
training time apart in ``--timings``. On real data (no truth.csv) there are no masks to learn: the
stage writes NaN lengths, a metrics file saying it was skipped and a note in ``--out``, and exits 0.
Params: ``segmentation`` (every key), ``images.crop_px`` and ``images.size_px`` (the models' input),
``data.path`` (truth.csv), ``seed`` and ``xai.bootstrap`` (the intervals).

    python -m stages.segment --table data/prepared/morphology.csv --bars data/prepared/bars.csv \
        --out models/segmentation --plots plots/segmentation \
        --metrics metrics/segmentation.json --timings metrics/timings/segment.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from galaxy_xai import io
from galaxy_xai.data import catalogue, splits, tables
from galaxy_xai.data.images import load_images
from galaxy_xai.models import segmentation
from galaxy_xai.models.unet import map_side_px
from galaxy_xai.results import evaluation
from stages._common import exit_on_bad_input, start

MODEL_FILE = "unet.keras"
SKIPPED_NOTE = "skipped.txt"
LENGTHS_FILE = "lengths.csv"


def skip(args: argparse.Namespace, log, bars, reason: str) -> None:
    """Every output, with NaN lengths, and why nothing was measured (so DVC has all its outputs)."""
    log.warning("skipped: %s", reason)
    io.write_text(args.out / SKIPPED_NOTE, f"segment stage skipped: {reason}\n")
    io.write_csv(args.plots / LENGTHS_FILE, segmentation.lengths_table(bars["objid"], bars["xai_split"], np.nan))
    io.write_metrics(args.metrics, args.timings, {"skipped": reason})


def arguments() -> argparse.ArgumentParser:
    """The stage's command line (``--params`` is added by :func:`stages._common.start`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="prepared morphology table (the labelled galaxies)")
    parser.add_argument("--bars", type=Path, required=True, help="prepared bar catalogue (bars.csv)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the trained U-Net (unet.keras)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of lengths.csv and the learning curve")
    parser.add_argument("--metrics", type=Path, required=True, help="scores on the test galaxies (JSON)")
    parser.add_argument("--timings", type=Path, required=True, help="training time (JSON)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, cfg, log = start("segment", arguments(), argv)
    seg, crop_px = cfg.segmentation, cfg.images.crop_px
    began = time.perf_counter()

    with exit_on_bad_input(log):
        bars = tables.read_bars(args.bars, columns=("objid", "xai_split", "image_path"))
        bars = bars[bars["xai_split"].isin(splits.XAI_SPLITS)].reset_index(drop=True)
        test_rows = tables.xai_rows(bars, "test", str(args.bars))
        truth = catalogue.read_truth(cfg.data.path)
        if truth is None:
            skip(args, log, bars, f"no truth.csv in {cfg.data.path} (real data): no true bar masks to learn from")
            return
        table = tables.read_table(args.table, ["GalaxyID", "image_path", "split"])
        geometry = segmentation.truth_geometry(table["GalaxyID"], truth, "training")
        barred = np.isfinite(geometry["length_px424"].to_numpy())
        try:
            learn, monitor = segmentation.training_split(barred, (table["split"] == "train").to_numpy())
        except ValueError as error:
            raise ValueError(f"{args.table}: {error}; raise synthetic.n_labelled") from None
    (args.out / MODEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    (args.out / SKIPPED_NOTE).unlink(missing_ok=True)  # a previous real-data run's note

    map_px = map_side_px(cfg.images.size_px, seg.downsample, len(seg.filters))
    log.info("loading %d + %d barred labelled galaxies at %d px, masks at %d px",
             int(learn.sum()), int(monitor.sum()), cfg.images.size_px, map_px)  # fmt: skip
    data = {}
    for name, rows in (("train", learn), ("val", monitor)):
        data[name] = (
            load_images(table.loc[rows, "image_path"].astype(str).tolist(), cfg.images),
            segmentation.target_masks(geometry[rows], map_px, crop_px),
        )
    model, curve, summary = segmentation.train_unet(
        data["train"], data["val"], filters=seg.filters, downsample=seg.downsample, epochs=seg.epochs,
        batch_size=seg.batch_size, learning_rate=seg.learning_rate, stop_patience=seg.stop_patience, seed=seg.seed,
        live_dir=args.plots / "dvclive", log=log,
    )  # fmt: skip
    io.save_model(model, args.out / MODEL_FILE)
    io.write_csv(args.plots / "learning_curve.tsv", curve, sep="\t")

    log.info("segmenting %d XAI val and test galaxies of the bar catalogue", len(bars))
    probabilities = segmentation.predict_masks(model, load_images(bars["image_path"].astype(str).tolist(), cfg.images))
    lengths_px424 = segmentation.mask_lengths_px424(probabilities, crop_px)
    true_masks = segmentation.target_masks(segmentation.truth_geometry(bars["objid"], truth, "gz2"), map_px, crop_px)
    dice = segmentation.dice_scores(segmentation.bar_components(probabilities, crop_px), true_masks)
    table_out = segmentation.lengths_table(bars["objid"], bars["xai_split"], lengths_px424)
    io.write_csv(args.plots / LENGTHS_FILE, table_out)

    log.info("scoring %d test galaxies (%d bootstrap resamples)", len(test_rows), cfg.xai.bootstrap)
    by_objid = table_out.set_index("objid")["length_px424"]
    in_test = (bars["xai_split"] == "test").to_numpy()
    dice_test = dict(zip(bars.loc[in_test, "objid"], dice[in_test], strict=True))
    scores = segmentation.test_scores(
        by_objid.loc[test_rows["objid"]].to_numpy(), test_rows, [dice_test[o] for o in test_rows["objid"]],
        cfg.xai.bootstrap, np.random.default_rng(cfg.seed),
    )  # fmt: skip
    metrics = {
        **scores,
        "n_no_bar_found": int(np.isnan(by_objid.loc[test_rows["objid"]].to_numpy()).sum()),
        "n_train": int(learn.sum()),
        "n_monitor": int(monitor.sum()),
        "map_px": map_px,
        "filters": list(seg.filters),
        **summary,
        "seconds": round(time.perf_counter() - began, 1),
    }
    io.write_metrics(args.metrics, args.timings, evaluation.finite_or_none(metrics))
    log.info(
        "segmentation, %d test galaxies: Spearman %.3f [%.3f, %.3f], Pearson %.3f [%.3f, %.3f] against the true length; "
        "rho_image %.3f against the catalogue; mean Dice %.3f; %d without a central bar",
        scores["n"], scores["spearman_truth"], *scores["spearman_truth_ci95"], scores["pearson_truth"],
        *scores["pearson_truth_ci95"], scores["rho_image"], scores["mean_dice"], metrics["n_no_bar_found"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
