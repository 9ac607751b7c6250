"""The grid search of the measurement settings on the validation split, and its file.

A setting (:class:`galaxy_xai.bars.barlength.Choice`) is (map source, estimator, X_input, mask, T_c and T_l
or fraction and floor). Every setting of ``xai.grid`` is measured on the validation galaxies and
correlated with the catalogue lengths (:func:`search`); the table is long-form, one row per setting,
NaN for parameters that do not apply (``plots/gridsearch.csv``).

The score is :data:`SCORE`, ``rho_image`` (424-px pixels, no shared per-galaxy factor, so the choice
is not driven by PETROR90_R); the paper-convention ``rho`` is recorded beside it. Two choices are
made, each among its own rows: ``chosen`` among the saliency map sources, ``chosen_image`` among the
image's, so the control gets the same search as the maps it controls. Each is the best score unless
that does not beat the best of the preferred rows (``xai.grid.prefer_map_source`` /
``prefer_estimator``: the models' mean length and the paper's Algorithm 1) by more than the noise
(:func:`choose`). Each carries its scores' bootstrap intervals and how often a bootstrap of the
validation galaxies picks the same map source and setting again (``choice_stability`` /
``choice_stability_image``).

:func:`gridsearch_json` is the writer of ``metrics/gridsearch.json``: every setting in it is written
by :meth:`Choice.to_json <galaxy_xai.bars.barlength.Choice.to_json>`, and read back by
:func:`galaxy_xai.bars.barlength.read_choice` / :func:`galaxy_xai.bars.barlength.read_settings`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxy_xai import statistics, units
from galaxy_xai.bars import barlength
from galaxy_xai.bars.barlength import Choice
from galaxy_xai.results import evaluation, paper
from galaxy_xai.results.formatting import number

SCORE = "rho_image"
"""The grid search's score: Pearson rho of the lengths in 424-px pixels with the catalogue's."""

FIELDS = tuple(field.name for field in dataclasses.fields(Choice))
"""The keys of a row that name its setting (written by :meth:`Choice.to_json`)."""


def config_settings(grid, models: Sequence[str]) -> list[Choice]:
    """Every setting of ``xai.grid`` (:class:`galaxy_xai.config` grid section) for ``models``, in table order."""
    return barlength.grid_settings(
        barlength.map_sources(models), grid.estimators, grid.x_input, grid.mask,
        grid.corr_threshold, grid.len_threshold, grid.fourier_fraction, grid.fourier_floor,
    )  # fmt: skip


def setting_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows of a grid table as JSON-ready dicts: the setting by :meth:`Choice.to_json`, then the other
    columns (``len_threshold_px``, scores) as pandas writes them (15 significant digits, NaN -> null)."""
    rows = json.loads(frame.to_json(orient="records", double_precision=15))
    return [
        {**Choice.from_json(row).to_json(), **{key: value for key, value in row.items() if key not in FIELDS}}
        for row in rows
    ]


def table2_markdown(best: pd.DataFrame, archs: Mapping[str, str]) -> str:
    """Table 2 (best validation rho per map source) beside the paper's, as Markdown.

    ``best``: one grid-table row per map source; ``archs``: {model: architecture} for the paper's value.
    """
    lines = [
        "| map source | paper rho (val) | rho_image | rho (x PETROR90_R) | estimator | mask | X_input | T_c "
        "| T_l (224 px) | T_l (px) | fraction | floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in best.itertuples():
        published = paper.table2_rho(row.map_source, archs.get(row.map_source))
        lines.append(
            f"| {row.map_source} | {'' if published is None else f'{published:.2f}'} | {row.rho_image:.3f} | {row.rho:.3f} "
            f"| {row.estimator} | {row.mask} | {row.x_input} | {number(row.corr_threshold, 'g', '')} "
            f"| {number(row.len_threshold, 'g', '')} | {number(row.len_threshold_px, 'g', '')} | {number(row.fraction, 'g', '')} "
            f"| {number(row.floor, 'g', '')} |"
        )
    return "\n".join(lines) + "\n"


def preferred_rows(table: pd.DataFrame, rows: np.ndarray, prefer: Mapping[str, str | None]) -> np.ndarray:
    """The rows among ``rows`` (bool, one per table row) whose fields match every non-null ``prefer``
    value (e.g. {'map_source': 'mean_length', 'estimator': 'algorithm1'}): (S,) bool."""
    keep = np.asarray(rows, dtype=bool).copy()
    for column, value in prefer.items():
        if value is not None:
            keep &= (table[column] == value).to_numpy()
    return keep


def choose(
    table: pd.DataFrame,
    lengths_px424: np.ndarray,
    rows: np.ndarray,
    prefer: Mapping[str, str | None],
    sample: pd.DataFrame,
    n_boot: int,
    rng,
) -> tuple[dict, dict]:
    """The setting chosen among ``rows`` (bool, one per table row), with its scores' bootstrap
    intervals, and how stable that choice is: (chosen record, choice stability).

    The best :data:`SCORE` wins only if it beats the best of the :func:`preferred_rows` by a paired
    bootstrap 95% interval above 0 on these galaxies; otherwise the preferred rows' best is kept.
    A one-standard-error rule: 320 validation galaxies cannot tell apart settings a few hundredths
    apart, and a choice made on that noise fails on the test split (docs/results.md, another sky).
    ``chosen['preference']`` records the test; the stability is that of the choice among the rows it
    was made from (the preferred rows when they were kept). ``lengths_px424``: (n, S) lengths of the
    table's settings; ``sample``: the validation galaxies (n rows).
    """
    catalogue = sample["length_px424"]
    best = int(np.flatnonzero(rows)[evaluation.choose_setting(table[rows], SCORE)])
    candidates, preference = rows, None
    preferred = preferred_rows(table, rows, prefer)
    if preferred.any() and not preferred[best]:
        reference = int(np.flatnonzero(preferred)[evaluation.choose_setting(table[preferred], SCORE)])
        test = statistics.paired_bootstrap_difference(
            lengths_px424[:, best], lengths_px424[:, reference], catalogue, "pearson", n_boot, rng
        )
        kept = test.verdict != "beats"
        if kept:
            candidates = preferred
        preference = {
            "prefer": {key: value for key, value in prefer.items() if value is not None},
            "best": setting_rows(table.iloc[[best]])[0],
            "preferred": setting_rows(table.iloc[[reference]])[0],
            "best_minus_preferred": test.to_json(),
            "kept_preferred": kept,
        }
        best = reference if kept else best
    # The search's score is rho_image; the paper-convention rho of the same setting is reported beside it.
    intervals = statistics.correlation_scores(
        lengths_px424[:, best], catalogue, sample["PETROR90_R"], statistics.score_keys("rho_image", "rho"), n_boot, rng
    )
    positions = np.flatnonzero(candidates)
    stability = evaluation.choice_stability(table.iloc[positions].reset_index(drop=True), lengths_px424[:, positions], catalogue, n_boot, rng)
    chosen = setting_rows(table.iloc[[best]])[0]
    chosen.pop("n", None)
    chosen["rho_image_ci95"] = evaluation.finite_or_none(intervals["rho_image_ci95"])
    chosen["rho_ci95"] = evaluation.finite_or_none(intervals["rho_ci95"])
    chosen["preference"] = evaluation.finite_or_none(preference)
    return chosen, stability


@dataclass(frozen=True)
class GridSearch:
    """The grid search's outcome: ``table`` (one row per setting: its fields, ``len_threshold_px``,
    ``rho_image``, ``rho``, ``n``), the two choices (:func:`choose`) and their stability."""

    table: pd.DataFrame
    chosen: dict
    stability: dict
    chosen_image: dict
    stability_image: dict

    @property
    def best(self) -> pd.DataFrame:
        """Table 2: the best row of each map source."""
        return evaluation.best_per_method(self.table, SCORE)


def twin_differences(
    lengths_px424: np.ndarray, twin_lengths_px424: np.ndarray, catalogue, n_boot: int, rng: np.random.Generator
) -> pd.DataFrame:
    """:data:`SCORE` of the model's lengths minus the twin's, setting by setting, on the same galaxies.

    ``lengths_px424`` and ``twin_lengths_px424``: (n, S) lengths of S settings measured on the
    model's maps and on its twin's (:mod:`galaxy_xai.xai.sanity`); ``catalogue`` (n,). Both are scored on
    the same ``n_boot`` resamples of the galaxies (one draw of indices for all settings), so the
    difference's interval is paired. Returns S rows: ``twin`` (the twin's score), ``minus_twin``
    (the difference) and its 95% interval ``minus_twin_low`` / ``minus_twin_high``.
    """
    catalogue = np.asarray(catalogue, dtype=np.float64)
    settings = np.shape(lengths_px424)[1]
    draws = statistics.bootstrap_correlations(np.hstack([lengths_px424, twin_lengths_px424]), catalogue, n_boot, rng)
    low, high = statistics.percentile_intervals(draws[:, :settings] - draws[:, settings:])
    twin = statistics.pearson_columns(twin_lengths_px424, catalogue)
    return pd.DataFrame(
        {
            "twin": twin,
            "minus_twin": statistics.pearson_columns(lengths_px424, catalogue) - twin,
            "minus_twin_low": low,
            "minus_twin_high": high,
        }
    )


def with_twins(
    table: pd.DataFrame, lengths_px424: np.ndarray, twins: Mapping[str, np.ndarray], catalogue, n_boot: int, rng
) -> pd.DataFrame:
    """The grid table with, for each twin kind in ``twins`` ({kind: (n, S) lengths of the same
    settings on the twin's maps, NaN columns for settings that use no model}), the columns
    ``rho_image_<kind>``, ``minus_<kind>``, ``minus_<kind>_low`` and ``minus_<kind>_high``
    (:func:`twin_differences`)."""
    out = table.copy()
    for kind, twin_lengths in twins.items():
        diff = twin_differences(lengths_px424, twin_lengths, catalogue, n_boot, rng)
        out[f"{SCORE}_{kind}"] = diff["twin"].to_numpy()
        for column in ("minus_twin", "minus_twin_low", "minus_twin_high"):
            out[column.replace("twin", kind)] = diff[column].to_numpy()
    return out


def passes_gate(table: pd.DataFrame, gate: Sequence[str]) -> np.ndarray:
    """(S,) bool: the settings whose lengths beat every twin of ``gate`` on these galaxies (the paired
    95% interval of :data:`SCORE` minus the twin's lies above 0). With no gate, every setting passes."""
    ok = np.ones(len(table), dtype=bool)
    for kind in gate:
        column = f"minus_{kind}_low"
        if column not in table:
            raise ValueError(f"gate: no {kind!r} twin maps were measured; expected one of the twins given to search()")
        ok &= (table[column] > 0).to_numpy()
    return ok


def search(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    settings: Sequence[Choice],
    sample: pd.DataFrame,
    crop_px: int | None,
    linearity: str,
    n_boot: int,
    rng: np.random.Generator,
    prefer_map_source: str | None = None,
    prefer_estimator: str | None = None,
    twin_maps: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    gate: Sequence[str] = (),
    highpass_sigma_px: float = barlength.DEFAULT_HIGHPASS_SIGMA_PX,
) -> GridSearch:
    """Measure every setting on the validation galaxies and choose (:func:`choose`).

    ``model_maps``: {model: (n, H, W)} and ``grey`` (n, H, W) of the galaxies of ``sample`` (n rows of
    :func:`galaxy_xai.data.tables.read_bars`, in order); ``rng`` draws the bootstrap resamples: the twins'
    differences first, then the saliency sources' choice, then the image's. ``prefer_map_source`` and
    ``prefer_estimator`` (``xai.grid``) name the preferred rows of the saliency choice; the image's
    prefers the estimator only.

    ``twin_maps``: {twin kind: {model: (n, H, W)}}, the same galaxies explained with each model's
    twins (:data:`galaxy_xai.config.TWINS`); every saliency setting is measured on them too and scored
    against the model's lengths (:func:`with_twins`). ``gate`` (``xai.grid.gate``): the twins whose
    lengths a saliency setting must beat (:func:`passes_gate`) to be chosen, so that no setting is
    chosen whose lengths a network that learnt nothing reproduces. If no setting passes, the choice is
    made among all of them and ``chosen['gate']['passed']`` is 0: the report then says the lengths are
    not the model's. ``highpass_sigma_px``: the blur of the image-only high-pass source.
    """
    map_px = np.shape(grey)[-1]
    twin_maps = dict(twin_maps or {})
    missing = [kind for kind in gate if kind not in twin_maps]
    if missing:
        raise ValueError(f"xai.grid.gate = {list(gate)}: no maps of the {', '.join(missing)} twins to test the settings on")
    lengths = barlength.setting_lengths(
        model_maps, grey, settings, crop_px, linearity, progress=True, highpass_sigma_px=highpass_sigma_px
    )
    lengths_px424 = units.map_px_to_px424(lengths, map_px, crop_px)
    frame = pd.DataFrame([c.record(map_px, crop_px) for c in settings])
    table = evaluation.grid_scores(frame, lengths_px424, sample["length_px424"], sample["PETROR90_R"])
    is_image = table["map_source"].isin(barlength.IMAGE_SOURCES).to_numpy()
    twins = {}
    for kind, maps in twin_maps.items():
        twin_lengths = np.full_like(lengths_px424, np.nan)
        model_settings = [c for c, image in zip(settings, is_image, strict=True) if not image]
        measured = barlength.setting_lengths(maps, grey, model_settings, crop_px, linearity, progress=True)
        twin_lengths[:, ~is_image] = units.map_px_to_px424(measured, map_px, crop_px)
        twins[kind] = twin_lengths
    table = with_twins(table, lengths_px424, twins, sample["length_px424"], n_boot, rng)
    eligible = ~is_image & passes_gate(table, gate)
    prefer = {"map_source": prefer_map_source, "estimator": prefer_estimator}
    chosen, stability = choose(table, lengths_px424, eligible if eligible.any() else ~is_image, prefer, sample, n_boot, rng)
    chosen["gate"] = {"twins": list(gate), "passed": int(eligible.sum()), "of": int((~is_image).sum())}
    chosen_image, stability_image = choose(table, lengths_px424, is_image, {"estimator": prefer_estimator}, sample, n_boot, rng)
    return GridSearch(table, chosen, stability, chosen_image, stability_image)


def gridsearch_json(result: GridSearch, linearity: str, map_px: int, crop_px: int | None) -> dict:
    """The content of ``metrics/gridsearch.json``: the run's facts, Table 2, the best setting of every
    (map source, estimator) pair (which the measure stage scores on the test galaxies), and the choices."""
    table = result.table
    return {
        "score": SCORE,
        "linearity": linearity,
        "map_px": int(map_px),
        "r90_map_px": units.r90_map_px(map_px, crop_px),
        "n": int(table["n"].iloc[0]),
        "settings": len(table),
        "table2": setting_rows(result.best),
        "best_per_estimator": setting_rows(evaluation.best_per(table, ["map_source", "estimator"], SCORE)),
        "chosen": result.chosen,
        "choice_stability": result.stability,
        "chosen_image": result.chosen_image,
        "choice_stability_image": result.stability_image,
    }


def describe(chosen: dict, stability: dict) -> str:
    """One log line for a chosen setting and the stability of the choice."""
    params = (
        f"T_c={number(chosen['corr_threshold'], 'g', absent='nan')}, T_l={number(chosen['len_threshold'], 'g', absent='nan')} "
        f"({number(chosen['len_threshold_px'], 'g', absent='nan')} px)"
        if chosen["estimator"] == barlength.ALGORITHM1
        else f"fraction={number(chosen['fraction'], 'g', absent='nan')}, floor={number(chosen['floor'], 'g', absent='nan')}"
    )
    lo, hi = chosen["rho_image_ci95"]
    return (
        f"{chosen['map_source']}, {chosen['estimator']}, mask={chosen['mask']}, x_input={chosen['x_input']}, {params}: "
        f"rho_image={number(chosen['rho_image'], absent='nan')} [{number(lo, absent='nan')}, {number(hi, absent='nan')}], rho={number(chosen['rho'], absent='nan')}; "
        f"chosen again in {100 * stability['map_source_frequency']:.0f}% (map source) / "
        f"{100 * stability['setting_frequency']:.0f}% (setting) of {stability['resamples']} bootstrap resamples"
        f"{preference_text(chosen.get('preference'))}"
    )


def gate_text(gate: dict) -> str:
    """One log line saying how many saliency settings passed the gate of :func:`search`."""
    if not gate["twins"]:
        return f"no gate: all {gate['of']} saliency settings are candidates"
    twins = " and ".join(f"the {kind} twins" for kind in gate["twins"])
    if not gate["passed"]:
        return (
            f"gate: none of the {gate['of']} saliency settings beats {twins} on validation: the choice is made among "
            "all of them, and its lengths are not shown to be the models'"
        )
    return f"gate: {gate['passed']} of {gate['of']} saliency settings beat {twins} on validation (paired 95% interval above 0)"


def preference_text(preference: dict | None) -> str:
    """How the preference rule of :func:`choose` decided, as a clause ('' when the best was preferred)."""
    if preference is None:
        return ""
    best, test = preference["best"], preference["best_minus_preferred"]
    lo, hi = test["ci95"]
    outcome = "kept the preferred setting" if preference["kept_preferred"] else "the best beats the preferred setting"
    return (
        f"; the best score was {best['map_source']} {best['estimator']} by {test['difference']:+.3f} "
        f"[{lo:+.3f}, {hi:+.3f}]: {outcome}"
    )
