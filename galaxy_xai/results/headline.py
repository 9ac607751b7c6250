"""The study's headline: the numbers the README quotes, as rows of one small table.

:func:`headline` turns one run's metrics (:class:`galaxy_xai.results.report.RunMetrics`) and the figure
stage's comparison (:func:`galaxy_xai.results.comparison.control_comparisons`) into ``{row: {field: value}}``;
the figure stage writes each row to ``metrics/headline/<row>.json`` (:func:`write_headline`), the
only files ``dvc.yaml`` declares as metrics. DVC prints one line per metrics file and one column
per key, so rows with the same few keys make ``dvc metrics show`` a table that fits a terminal and
grows downwards as the study adds rows; ``tools/record_experiment.py`` copies the whole folder
(:func:`read_headline`) into a run's record. Nothing here computes a score: every value is copied
from the detail files, which stay plain outputs (``metrics/*.json``).

Every row has a subset of the same keys, named to sort in reading order (DVC sorts columns):

* ``value``, ``value_95lo``, ``value_95up``: the row's number and its 95% bootstrap interval;
* ``gain``, ``gain_95lo``, ``gain_95up``, ``gain_verdict``: what the saliency length gains over
  this row, a paired difference on the same galaxies: the saliency length's score minus this row's
  (in a ``rank_mean`` row: the rank mean with the saliency length minus the row's rank mean), and
  whether the saliency method beats / ties with / loses to it (beats only when the interval
  excludes 0);
* ``n``: the galaxies scored; ``target``: the number the study aims at, where there is one.

Rows; the score of the length rows is the one the saliency row names: ``spearman_truth``, the
Spearman rho against the true length in image units on the synthetic sky, or
``spearman_catalogue``, against the catalogue, where there is no truth:

* ``morphology_rmse`` / ``morphology_rmse_mean_baseline``: the ensemble's test RMSE of the 37 vote
  fractions and the training-mean baseline's; ``morphology_bar_auc``: bar ROC AUC;
* ``choice`` / ``choice_validation_best``: the grid search's chosen map source and estimator, and
  the plain best of validation before the preference rule (the same unless the rule changed it);
* ``paper_rho``: rho in the paper's convention (x PETROR90_R); ``paper_rho_null``: what the
  shared factor alone gives (permutation null, mean);
* ``spearman_truth`` / ``spearman_catalogue``: the saliency method (the headline number), ``target``
  issue #13's 0.70;
* ``vs_<control>``: each control of ``barlengths.json`` and the cross-fitted control CNN;
* ``rank_mean_<lengths>[_swap_<length>]``: the complements (:func:`rank_mean_row`);
* ``gap_closed``: the fraction of the way from the random-weights twins' Spearman vs truth to the
  segmentation U-Net's that the saliency length goes (:func:`galaxy_xai.results.evaluation.gap_closed`);
* ``accuracy_median_ratio_truth``, ``accuracy_within_20pct_truth``: the saliency length's median
  L / L_true and the fraction of galaxies within 20% of the true length;
* ``k_models_asymptote``: the mean length of infinitely many models of the recipe (Spearman-Brown);
* ``rotation_spread``: median relative spread of the length over turns of the galaxy;
* ``true_axis_<source>``: a source's maps measured along the TRUE bar axes (``true_axis.json``,
  synthetic sky: the explanation, its twins, the image), ``gain`` the saliency length (as measured)
  minus it: what measuring along the true axis would have given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from galaxy_xai import io
from galaxy_xai.results.report import SPEARMAN_TRUTH_TARGET, RunMetrics

SCORES = {"spearman_truth_image": "spearman_truth", "spearman_image": "spearman_catalogue"}
"""The headline score (a key of the detail files) -> its row name: truth where the run has it."""

CONTROL_CNN = "control_cnn"
SALIENCY = "saliency"


def score_key(bars: Mapping) -> str:
    """The detail files' key of the headline score: Spearman against the truth if this run has one."""
    return next((key for key in SCORES if bars.get(key) is not None), "spearman_image")


def value_fields(entry: Mapping, key: str) -> dict:
    """``entry[key]`` and its ``<key>_ci95`` as {value, value_95lo, value_95up}; {} if absent."""
    if entry.get(key) is None:
        return {}
    lo, up = entry.get(f"{key}_ci95") or (None, None)
    return {"value": entry[key], **({"value_95lo": lo, "value_95up": up} if lo is not None else {})}


def paired_fields(diff: Mapping | None) -> dict:
    """A paired difference {difference, ci95, verdict} as the gain* fields; {} if absent."""
    if not diff or diff.get("difference") is None:
        return {}
    lo, up = diff.get("ci95") or (None, None)
    return {"gain": diff["difference"], "gain_95lo": lo, "gain_95up": up, "gain_verdict": diff.get("verdict")}


def rank_mean_row(name: str) -> str | None:
    """A complements difference 'A - B' (``+``-joined lengths) as the row of B, or None if A does not
    hold the saliency length where B does not: 'isophote+control+saliency - isophote+control' ->
    'rank_mean_isophote+control' (what adding the saliency length gains), 'isophote+control+saliency
    - isophote+control+image' -> 'rank_mean_isophote+control+image_swap_image' (what the saliency
    length gains in place of the image-only length)."""
    with_saliency, _, without = name.partition(" - ")
    members, others = with_saliency.split("+"), without.split("+")
    if SALIENCY not in members or SALIENCY in others or not without:
        return None
    swapped = [m for m in others if m not in members]
    return f"rank_mean_{without}" + "".join(f"_swap_{m}" for m in swapped)


def comparison_rows(score: str, bars: Mapping, comparison: Mapping) -> dict[str, dict]:
    """The ``vs_*`` and ``rank_mean_*`` rows: every length scored on the saliency method's galaxies
    in ``score``, with the paired difference."""
    entries = {name: (entry, entry.get("difference", {}).get(score)) for name, entry in (bars.get("controls") or {}).items()}
    if comparison.get("control"):
        entries[CONTROL_CNN] = (
            {**comparison["control"], "n": comparison.get("n_shared")},
            comparison.get("difference", {}).get(score),
        )
    rows = {
        f"vs_{name}": {**value_fields(entry, score), **paired_fields(diff), "n": entry.get("n")}
        for name, (entry, diff) in entries.items()
    }
    complements = comparison.get("complements") or {}
    for name, differences in (complements.get("difference") or {}).items():
        row = rank_mean_row(name)
        baseline = (complements.get("scores") or {}).get(name.partition(" - ")[2], {})
        if row and differences.get(score):
            rows[row] = {**value_fields(baseline, score), **paired_fields(differences[score]),
                                       "n": complements.get("n")}  # fmt: skip
    return rows


def true_axis_rows(detail: Mapping) -> dict[str, dict]:
    """The ``true_axis_<source>`` rows of the true-axis diagnostic (``true_axis.json``; none when it
    was skipped or is absent): each source's Spearman vs truth along the true axes, and the saliency
    length's paired gain over it."""
    n = detail.get("n_test")
    return {
        f"true_axis_{name}": {**value_fields(row, "spearman_truth"), **paired_fields(row.get("explanation_own_minus")), "n": n}
        for name, row in (detail.get("rows") or {}).items()
    }


def setting_name(setting: Mapping) -> str:
    """A grid-search setting as its map source and estimator, e.g. 'mean_length algorithm1'."""
    return " ".join(str(setting[key]) for key in ("map_source", "estimator") if setting.get(key) is not None)


def headline(run: RunMetrics, comparison: Mapping) -> dict[str, dict]:
    """{row: {field: value}} of one run (see the module docstring); rows whose source is absent
    (an older stage, real data with no truth) are left out, and so are fields that are None."""
    bars, morph, grid = run.barlengths, run.morphology, run.gridsearch
    score = score_key(bars)
    chosen = grid.get("chosen") or {}
    best = (chosen.get("preference") or {}).get("best") or chosen
    rmse = morph.get("rmse", {})
    ensemble = (bars.get("ensemble") or {}).get("truth" if score == "spearman_truth_image" else "catalogue") or {}
    spread = run.rotation.get("median_relative_spread", {}).get(grid.get("linearity"))
    rows = {
        "morphology_rmse": {"value": rmse.get("ensemble", {}).get("test"), "n": morph.get("n", {}).get("test")},
        "morphology_rmse_mean_baseline": {"value": rmse.get("baseline_train_mean", {}).get("test")},
        "morphology_bar_auc": {"value": morph.get("bar_auc")},
        "choice": {"value": setting_name(chosen) or None, "n": grid.get("n")},
        "choice_validation_best": {"value": setting_name(best) or None},
        "paper_rho": {**value_fields(bars, "rho"), "n": bars.get("n")},
        "paper_rho_null": {"value": bars.get("rho_null")},
        SCORES[score]: {**value_fields(bars, score), "n": bars.get("n"),
                 "target": SPEARMAN_TRUTH_TARGET["target"] if score == "spearman_truth_image" else None},
        **comparison_rows(score, bars, comparison),
        "gap_closed": {**value_fields(bars, "gap_closed"), "n": bars.get("gap_closed_n")},
        "accuracy_median_ratio_truth": {**value_fields(bars, "median_ratio_truth"), "n": bars.get("n_truth")},
        "accuracy_within_20pct_truth": {**value_fields(bars, "within_20pct_truth"), "n": bars.get("n_truth")},
        "k_models_asymptote": {**value_fields(ensemble, "asymptote"), "n": ensemble.get("n")},
        "rotation_spread": {"value": spread, "n": run.rotation.get("galaxies"), "target": run.rotation.get("elongation_target")},
        **true_axis_rows(run.true_axis),
    }  # fmt: skip
    # JSON has no NaN: a score that could not be computed is left out like a missing one.
    rows = {name: {k: v for k, v in fields.items() if v is not None and v == v} for name, fields in rows.items()}
    return {name: fields for name, fields in rows.items() if "value" in fields}


def write_headline(folder: str | Path, rows: Mapping[str, Mapping]) -> None:
    """Each row as ``<folder>/<row>.json``; files of rows this run no longer has are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.stem not in rows:
            stale.unlink()
    for name, fields in rows.items():
        io.write_json(folder / f"{name}.json", dict(fields))


def read_headline(folder: str | Path) -> dict[str, dict]:
    """The rows :func:`write_headline` wrote, in row-name order; {} if there are none."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))}
