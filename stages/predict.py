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
``kaggle_test``). Nothing is written until every prediction has succeeded.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from galaxy_xai import catalogue, evaluation, io, models, prepared, training
from galaxy_xai.config import ImagesConfig
from stages._common import start

SPLITS = ("train", "val", "test")
ENSEMBLE = "ensemble"
BASELINES = {"baseline_zeros": "baseline: all zeros", "baseline_train_mean": "baseline: training-set mean"}

PAPER_TEST_RMSE = {
    "vgg": ("VGG16", 0.07939),
    "resnet": ("ResNet50V2", 0.08110),
    "xception": ("Xception", 0.07933),
}
"""Bhambra et al. (2022) Table 1 test RMSE of each backbone family (real Galaxy Zoo data, 224 px)."""
PAPER_REFERENCE = {
    ENSEMBLE: ("ensemble", 0.07747),
    "baseline_zeros": ("Kaggle all-zeros benchmark", 0.27160),
}


def per_question_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Test RMSE of each Galaxy Zoo question over its answers' columns; (n, 37) arrays."""
    index = {c: i for i, c in enumerate(catalogue.CLASS_COLUMNS)}
    out = {}
    for q in catalogue.QUESTIONS:
        cols = [index[c] for c in catalogue.question_columns(q)]
        out[f"Q{q}"] = evaluation.rmse(y_true[:, cols], y_pred[:, cols])
    return out


def score(predictions: dict[str, np.ndarray], y_true: np.ndarray, split: np.ndarray) -> dict:
    """RMSE per split and per test question of every prediction array (n, 37) against ``y_true``."""
    rmse = {
        name: {s: evaluation.rmse(y_true[split == s], pred[split == s]) for s in SPLITS}
        for name, pred in predictions.items()
    }
    test = split == "test"
    questions = {name: per_question_rmse(y_true[test], pred[test]) for name, pred in predictions.items()}
    return {"rmse": rmse, "per_question_test_rmse": questions}


def bar_auc(
    truth: pd.DataFrame, galaxy_ids: np.ndarray, bar_score: np.ndarray, log: logging.Logger
) -> float | None:
    """ROC AUC of ``bar_score`` (e.g. Class3.1) for the true ``has_bar`` of the disk galaxies among
    ``galaxy_ids``; None (and a warning) when they are not both barred and unbarred."""
    disks = truth[(truth["set"] == "training") & (truth["kind"] == "disk")]
    scored = pd.DataFrame({"id": galaxy_ids, "score": bar_score}).merge(disks, on="id")
    if scored["has_bar"].nunique() < 2:
        log.warning(
            "bar_auc: the test disks are not both barred and unbarred (%d disks); reported as null",
            len(scored),
        )
        return None
    return float(roc_auc_score(scored["has_bar"].astype(int), scored["score"]))


def table1_markdown(
    scores: dict, epochs: dict[str, int | None], archs: dict[str, str], n: dict[str, int]
) -> str:
    """Table 1 as Markdown: our RMSEs beside the paper's test RMSE of the same family."""

    def paper(name: str) -> str:
        family = models.SPECS[archs[name]].family if name in archs else None
        ref = PAPER_TEST_RMSE.get(family) if family else PAPER_REFERENCE.get(name)
        return f"{ref[1]:.5f} ({ref[0]})" if ref else ""

    labels = {name: name for name in archs} | {ENSEMBLE: "ensemble (mean)"} | BASELINES
    lines = [
        "# Table 1: morphology CNNs, RMSE over the 37 vote fractions",
        "",
        f"Splits: {n['train']} train / {n['val']} val / {n['test']} test galaxies. Predictions are "
        "unaugmented; train RMSE is on the training images without augmentation.",
        "",
        "| model | architecture | epochs | train RMSE | val RMSE | test RMSE | paper test RMSE |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, rmse in scores["rmse"].items():
        epoch = epochs.get(name)
        lines.append(
            f"| {labels[name]} | {archs.get(name, '')} | {'' if epoch is None else epoch} | "
            f"{rmse['train']:.5f} | {rmse['val']:.5f} | {rmse['test']:.5f} | {paper(name)} |"
        )
    lines += [
        "",
        "Paper (Bhambra et al. 2022, real Galaxy Zoo images at 224 px, ImageNet-pretrained): VGG16 0.07939, "
        "ResNet50V2 0.08110, Xception 0.07933, ensemble 0.07747; Kaggle winner 0.07492, central-pixel "
        "benchmark 0.16194, all-zeros benchmark 0.27160.",
        "",
    ]
    return "\n".join(lines)


def prediction_frame(
    galaxy_ids: np.ndarray, values: np.ndarray, split: np.ndarray | None = None
) -> pd.DataFrame:
    """GalaxyID (+ split) + the 37 answers in Kaggle column order."""
    frame = pd.DataFrame(values, columns=catalogue.CLASS_COLUMNS)
    if split is not None:
        frame.insert(0, "split", split)
    frame.insert(0, "GalaxyID", np.asarray(galaxy_ids, dtype=np.int64))
    return frame


def kaggle_submission(
    loaded: list[keras.Model], kaggle: catalogue.KaggleTestImages, images_cfg: ImagesConfig
) -> pd.DataFrame | None:
    """The ensemble's predictions (GalaxyID + 37 answers) for the usable Kaggle test JPEGs; None if none."""
    if not kaggle.paths:
        return None
    ensemble = np.mean([training.predict(model, kaggle.paths, images_cfg) for model in loaded], axis=0)
    return prediction_frame(kaggle.galaxy_ids, ensemble)


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
    return json.loads(path.read_text())["epochs_run"] if path.is_file() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=Path, default=Path("models/morphology"), help="folder of <model>.keras"
    )
    parser.add_argument("--table", type=Path, default=Path("data/prepared/morphology.csv"))
    parser.add_argument(
        "--train-metrics", type=Path, default=Path("metrics/train"), help="folder of <model>.json"
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics/morphology.json"))
    parser.add_argument("--table1", type=Path, default=Path("metrics/table1.md"))
    parser.add_argument("--predictions", type=Path, default=Path("data/predictions"))
    args, cfg, log = start("predict", parser, argv)

    try:
        table = prepared.read_table(
            args.table, ["GalaxyID", "image_path", "split", *catalogue.CLASS_COLUMNS]
        )
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    if not (table["split"] == "test").any() or not (table["split"] == "train").any():
        log.error("%s: expected rows in the train and test splits (prepare.test_fraction > 0)", args.table)
        raise SystemExit(2)
    missing = [
        str(args.models / f"{name}.keras")
        for name in cfg.models
        if not (args.models / f"{name}.keras").is_file()
    ]
    if missing:
        log.error("trained model(s) not found: %s (run the train stages first)", ", ".join(missing))
        raise SystemExit(2)

    data_dir = Path(cfg.data.path)
    # Scanned before any prediction: a file TensorFlow could not read is skipped and listed, not fatal.
    kaggle = catalogue.kaggle_test_images(data_dir)
    if kaggle is not None:
        log_skipped(kaggle, log)

    paths = table["image_path"].astype(str).tolist()
    ids = table["GalaxyID"].to_numpy(dtype=np.int64)
    split = table["split"].to_numpy(dtype=str)
    y_true = table[catalogue.CLASS_COLUMNS].to_numpy(dtype=np.float64)

    loaded = {}
    predictions: dict[str, np.ndarray] = {}
    for name in cfg.models:
        loaded[name] = keras.models.load_model(args.models / f"{name}.keras")
        predictions[name] = training.predict(loaded[name], paths, cfg.images)
        log.info("%s: predicted %d galaxies", name, len(paths))
    predictions[ENSEMBLE] = np.mean([predictions[name] for name in cfg.models], axis=0)
    train_mean = y_true[split == "train"].mean(axis=0)
    predictions["baseline_zeros"] = np.zeros_like(y_true)
    predictions["baseline_train_mean"] = np.broadcast_to(train_mean, y_true.shape)

    scores = score(predictions, y_true, split)
    n = {s: int((split == s).sum()) for s in SPLITS}
    metrics = {"n": n, **scores}
    mean_baseline = scores["rmse"]["baseline_train_mean"]["test"]
    metrics["test_rmse_over_mean_baseline"] = {
        name: scores["rmse"][name]["test"] / mean_baseline for name in [*cfg.models, ENSEMBLE]
    }

    truth_path = data_dir / catalogue.TRUTH_CSV
    if truth_path.is_file():
        test = split == "test"
        bar_column = catalogue.CLASS_COLUMNS.index("Class3.1")
        metrics["bar_auc"] = bar_auc(
            pd.read_csv(truth_path), ids[test], predictions[ENSEMBLE][test, bar_column], log
        )

    submission = None
    if kaggle is not None:
        submission = kaggle_submission(list(loaded.values()), kaggle, cfg.images)
        metrics["kaggle_test"] = kaggle.counts
        log.info("Kaggle submission: %d of %d images of %s", len(kaggle.paths), kaggle.n_files, kaggle.folder)

    epochs = {name: read_epochs(args.train_metrics, name) for name in cfg.models}
    archs = {name: cfg.models[name].arch for name in cfg.models}
    table1 = table1_markdown(scores, epochs, archs, n)

    # Every prediction succeeded: only now write, so a crash above leaves no partial outputs.
    for name in [*cfg.models, ENSEMBLE]:
        io.write_csv(args.predictions / f"{name}.csv", prediction_frame(ids, predictions[name], split))
    if kaggle is not None:
        io.write_csv(args.predictions / "kaggle_skipped.csv", kaggle.skipped)
    if submission is not None:
        io.write_csv(args.predictions / "kaggle_submission.csv", submission, float_format="%.6f")
    io.write_json(args.metrics, metrics)
    io.write_text(args.table1, table1)
    for name in [*cfg.models, ENSEMBLE, *BASELINES]:
        log.info("%-20s test RMSE %.5f", name, scores["rmse"][name]["test"])
    if "bar_auc" in metrics:
        log.info("bar AUC (ensemble Class3.1, test disks): %s", metrics["bar_auc"])


if __name__ == "__main__":
    main()
