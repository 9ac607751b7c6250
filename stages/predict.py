"""Stage ``predict``: Table 1. Every morphology model, their ensemble and two baselines, scored.

For every model of ``models`` in params.yaml (in that order) and the ensemble (the mean of their
predictions), predicts the vote fractions of every labelled galaxy (unaugmented) and reports the
RMSE over all 37 outputs (the Kaggle metric) on the train / val / test splits, the test RMSE per
question, and the same for two baselines (all zeros; the training-set mean answer vector).
On the synthetic sky (``truth.csv`` in ``data.path``) it also reports how well the ensemble's
Class3.1 separates barred from unbarred disks of the test split (ROC AUC, ``bar_auc``).

Writes ``--metrics`` (JSON), ``--table1`` (Markdown, with the paper's numbers for reference),
``<predictions>/<model>.csv`` and ``ensemble.csv`` (GalaxyID, split, 37 answers) and, when
``<data.path>/images_test_rev1/images`` exists, ``<predictions>/kaggle_submission.csv`` (the
ensemble's predictions for its usable JPEGs) and ``<predictions>/kaggle_skipped.csv`` (file,
reason: names that are not GalaxyIDs and JPEGs that do not decode, also counted in the metrics'
``kaggle_test``). Nothing is written until every prediction has succeeded. Params: ``models``
(every key, with its ``arch``), ``images.crop_px`` and ``images.size_px`` (the prediction inputs)
and ``data.path`` (``truth.csv`` and the Kaggle test folder). The scoring is
:mod:`galaxy_xai.results.table1`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from galaxy_xai import io
from galaxy_xai.data import catalogue, galaxyzoo, tables
from galaxy_xai.models import training
from galaxy_xai.results import table1
from stages._common import exit_on_bad_input, start


def log_skipped(kaggle: catalogue.KaggleTestImages, log: logging.Logger, shown: int = 20) -> None:
    """Warn about the skipped Kaggle test files, naming the first ``shown`` of them."""
    if kaggle.skipped.empty:
        return
    log.warning(
        "Kaggle test folder %s: skipped %d of %d JPEGs (%s)",
        kaggle.folder,
        len(kaggle.skipped),
        kaggle.n_files,
        ", ".join(f"{n} {reason}" for reason, n in kaggle.counts["skipped"].items() if n),
    )
    for row in kaggle.skipped.head(shown).itertuples():
        log.warning("  skipped %s: %s", row.file, row.reason)
    if len(kaggle.skipped) > shown:
        log.warning("  ... and %d more (all listed in kaggle_skipped.csv)", len(kaggle.skipped) - shown)


def read_epochs(train_metrics: Path, name: str) -> int | None:
    path = train_metrics / f"{name}.json"
    return io.read_json(path, "the train stage's metrics")["epochs_run"] if path.is_file() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <model>.keras")
    parser.add_argument("--table", type=Path, required=True, help="prepared morphology table")
    parser.add_argument("--train-metrics", type=Path, required=True, help="folder of <model>.json")
    parser.add_argument("--metrics", type=Path, required=True, help="scores (JSON)")
    parser.add_argument("--table1", type=Path, required=True, help="Table 1 (Markdown)")
    parser.add_argument("--predictions", type=Path, required=True, help="folder of the prediction CSVs")
    args, cfg, log = start("predict", parser, argv)

    data_dir = Path(cfg.data.path)
    with exit_on_bad_input(log):
        table = tables.read_table(args.table, ["GalaxyID", "image_path", "split", *galaxyzoo.CLASS_COLUMNS])
        if not (table["split"] == "test").any() or not (table["split"] == "train").any():
            raise ValueError(f"{args.table}: expected rows in the train and test splits (prepare.test_fraction > 0)")
        missing = [str(args.models / f"{name}.keras") for name in cfg.models if not (args.models / f"{name}.keras").is_file()]
        if missing:
            raise ValueError(f"trained model(s) not found: {', '.join(missing)} (run the train stages first)")
        truth = catalogue.read_truth(data_dir)  # the synthetic sky's; None on real data
        loaded = {name: io.load_model(args.models / f"{name}.keras") for name in cfg.models}
    # Scanned before any prediction: a file TensorFlow could not read is skipped and listed, not fatal.
    kaggle = catalogue.kaggle_test_images(data_dir)
    if kaggle is not None:
        log_skipped(kaggle, log)

    paths = table["image_path"].astype(str).tolist()
    ids = table["GalaxyID"].to_numpy(dtype=np.int64)
    split = table["split"].to_numpy(dtype=str)
    y_true = table[galaxyzoo.CLASS_COLUMNS].to_numpy(dtype=np.float64)

    predicted: dict[str, np.ndarray] = {}
    for name in cfg.models:
        predicted[name] = training.predict(loaded[name], paths, cfg.images)
        log.info("%s: predicted %d galaxies", name, len(paths))
    predictions = table1.with_ensemble_and_baselines(predicted, y_true, split)
    scores = table1.rmse_scores(predictions, y_true, split)
    metrics = table1.table1_metrics(scores, split, list(cfg.models))
    if truth is not None:
        metrics["bar_auc"] = table1.ensemble_bar_auc(truth, ids, predictions[table1.ENSEMBLE], split, log)

    submission = None
    if kaggle is not None:
        submission = table1.kaggle_submission(list(loaded.values()), kaggle, cfg.images)
        metrics["kaggle_test"] = kaggle.counts
        log.info("Kaggle submission: %d of %d images of %s", len(kaggle.paths), kaggle.n_files, kaggle.folder)

    epochs = {name: read_epochs(args.train_metrics, name) for name in cfg.models}
    archs = {name: cfg.models[name].arch for name in cfg.models}
    table1_md = table1.table1_markdown(scores, epochs, archs, metrics["n"])

    # Every prediction succeeded: only now write, so a crash above leaves no partial outputs.
    for name in [*cfg.models, table1.ENSEMBLE]:
        io.write_csv(args.predictions / f"{name}.csv", table1.prediction_frame(ids, predictions[name], split))
    if kaggle is not None:
        io.write_csv(args.predictions / "kaggle_skipped.csv", kaggle.skipped)
    if submission is not None:
        io.write_csv(args.predictions / "kaggle_submission.csv", submission, float_format="%.6f")
    io.write_json(args.metrics, metrics)
    io.write_text(args.table1, table1_md)
    for name in [*cfg.models, table1.ENSEMBLE, *table1.BASELINES]:
        log.info("%-20s test RMSE %.5f", name, scores["rmse"][name]["test"])
    if "bar_auc" in metrics:
        log.info("bar AUC (ensemble Class3.1, test disks): %s", metrics["bar_auc"])


if __name__ == "__main__":
    main()
