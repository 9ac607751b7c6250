"""Table 1: the morphology models' predictions scored, with their ensemble and two baselines.

Predictions and labels are (n, 37) arrays of vote fractions in :data:`CLASS_COLUMNS` order, one row
per labelled galaxy, with ``split`` (n,) its morphology split (train / val / test). Scores are the
RMSE over all 37 outputs (the Kaggle metric) per split and the test RMSE per Galaxy Zoo question;
the ensemble is the mean of the models' predictions; the baselines are all zeros and the
training-set mean answer vector. On the synthetic sky, :func:`bar_auc` asks how well a score (the
ensemble's Class3.1) separates barred from unbarred disks. :func:`table1_markdown` sets the scores
beside the paper's, and :func:`kaggle_submission` assembles the ensemble's predictions for the
optional Kaggle test folder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from galaxy_xai.config import ImagesConfig
from galaxy_xai.data.catalogue import KaggleTestImages
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS, QUESTIONS, question_columns
from galaxy_xai.data.splits import MORPHOLOGY_SPLITS
from galaxy_xai.models import architectures, training
from galaxy_xai.results import paper
from galaxy_xai.statistics import rmse

ENSEMBLE = "ensemble"
BASELINES = {"baseline_zeros": "baseline: all zeros", "baseline_train_mean": "baseline: training-set mean"}
"""The baselines' names in the scores -> their label in Table 1."""

PAPER_REFERENCE = {
    ENSEMBLE: ("ensemble", paper.TABLE1_ENSEMBLE_RMSE),
    "baseline_zeros": ("Kaggle all-zeros benchmark", paper.KAGGLE_RMSE["all_zeros"]),
}
"""The paper's test RMSE beside our rows that are not a backbone: the ensemble and the all-zeros benchmark."""


def with_ensemble_and_baselines(
    predictions: Mapping[str, np.ndarray], y_true: np.ndarray, split: np.ndarray
) -> dict[str, np.ndarray]:
    """The models' ``predictions`` (n, 37) each, then :data:`ENSEMBLE` (their mean) and the
    :data:`BASELINES` (all zeros; the mean of ``y_true`` (n, 37) over ``split == 'train'``)."""
    out = dict(predictions)
    out[ENSEMBLE] = np.mean([predictions[name] for name in predictions], axis=0)
    train_mean = y_true[split == "train"].mean(axis=0)
    out["baseline_zeros"] = np.zeros_like(y_true)
    out["baseline_train_mean"] = np.broadcast_to(train_mean, y_true.shape)
    return out


def per_question_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Test RMSE of each Galaxy Zoo question over its answers' columns; (n, 37) arrays."""
    index = {c: i for i, c in enumerate(CLASS_COLUMNS)}
    out = {}
    for q in QUESTIONS:
        cols = [index[c] for c in question_columns(q)]
        out[f"Q{q}"] = rmse(y_true[:, cols], y_pred[:, cols])
    return out


def rmse_scores(predictions: Mapping[str, np.ndarray], y_true: np.ndarray, split: np.ndarray) -> dict:
    """RMSE per split and per test question of every prediction array (n, 37) against ``y_true``."""
    rmses = {
        name: {s: rmse(y_true[split == s], pred[split == s]) for s in MORPHOLOGY_SPLITS}
        for name, pred in predictions.items()
    }
    test = split == "test"
    questions = {name: per_question_rmse(y_true[test], pred[test]) for name, pred in predictions.items()}
    return {"rmse": rmses, "per_question_test_rmse": questions}


def table1_metrics(scores: dict, split: np.ndarray, model_names: Sequence[str]) -> dict:
    """The metrics of Table 1: galaxies per split, ``scores`` (:func:`rmse_scores`) and each model's
    and the ensemble's test RMSE over that of the training-set mean baseline."""
    n = {s: int((split == s).sum()) for s in MORPHOLOGY_SPLITS}
    metrics = {"n": n, **scores}
    mean_baseline = scores["rmse"]["baseline_train_mean"]["test"]
    metrics["test_rmse_over_mean_baseline"] = {
        name: scores["rmse"][name]["test"] / mean_baseline for name in [*model_names, ENSEMBLE]
    }
    return metrics


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


def ensemble_bar_auc(
    truth: pd.DataFrame, galaxy_ids: np.ndarray, ensemble: np.ndarray, split: np.ndarray, log: logging.Logger
) -> float | None:
    """:func:`bar_auc` of the ensemble's Class3.1 (``ensemble`` (n, 37)) on the test split's disks."""
    test = split == "test"
    bar_column = CLASS_COLUMNS.index("Class3.1")
    return bar_auc(truth, galaxy_ids[test], ensemble[test, bar_column], log)


def table1_markdown(
    scores: dict, epochs: dict[str, int | None], archs: dict[str, str], n: dict[str, int]
) -> str:
    """Table 1 as Markdown: our RMSEs beside the paper's test RMSE of the same family."""

    def published(name: str) -> str:
        family = architectures.SPECS[archs[name]].family if name in archs else None
        ref = paper.TABLE1_TEST_RMSE.get(family) if family else PAPER_REFERENCE.get(name)
        return f"{ref[1]:.5f} ({ref[0]})" if ref else ""

    labels = {name: name for name in archs} | {ENSEMBLE: "ensemble (mean)"} | BASELINES
    kaggle = paper.KAGGLE_RMSE
    lines = [
        "# Table 1: morphology CNNs, RMSE over the 37 vote fractions",
        "",
        f"Splits: {n['train']} train / {n['val']} val / {n['test']} test galaxies. Predictions are "
        "unaugmented; train RMSE is on the training images without augmentation.",
        "",
        "| model | architecture | epochs | train RMSE | val RMSE | test RMSE | paper test RMSE |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, rmse_ in scores["rmse"].items():
        epoch = epochs.get(name)
        lines.append(
            f"| {labels[name]} | {archs.get(name, '')} | {'' if epoch is None else epoch} | "
            f"{rmse_['train']:.5f} | {rmse_['val']:.5f} | {rmse_['test']:.5f} | {published(name)} |"
        )
    lines += [
        "",
        "Paper (Bhambra et al. 2022, real Galaxy Zoo images at 224 px, ImageNet-pretrained): "
        + ", ".join(f"{label} {rmse_:.5f}" for label, rmse_ in paper.TABLE1_TEST_RMSE.values())
        + f", ensemble {paper.TABLE1_ENSEMBLE_RMSE:.5f}; Kaggle winner {kaggle['winner']:.5f}, central-pixel "
        f"benchmark {kaggle['central_pixel']:.5f}, all-zeros benchmark {kaggle['all_zeros']:.5f}.",
        "",
    ]
    return "\n".join(lines)


def prediction_frame(
    galaxy_ids: np.ndarray, values: np.ndarray, split: np.ndarray | None = None
) -> pd.DataFrame:
    """GalaxyID (+ split) + the 37 answers (n, 37) in Kaggle column order."""
    frame = pd.DataFrame(values, columns=CLASS_COLUMNS)
    if split is not None:
        frame.insert(0, "split", split)
    frame.insert(0, "GalaxyID", np.asarray(galaxy_ids, dtype=np.int64))
    return frame


def kaggle_submission(
    loaded: list[keras.Model], kaggle: KaggleTestImages, images_cfg: ImagesConfig
) -> pd.DataFrame | None:
    """The ensemble's predictions (GalaxyID + 37 answers) for the usable Kaggle test JPEGs; None if none."""
    if not kaggle.paths:
        return None
    ensemble = np.mean([training.predict(model, kaggle.paths, images_cfg) for model in loaded], axis=0)
    return prediction_frame(kaggle.galaxy_ids, ensemble)
