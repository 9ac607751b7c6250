"""What the maps hold about a bar's length when the bar's axis is given: the true-axis diagnostic.

The explanation's lengths can fall short for two reasons: the maps (what the explanation shows of the
bar) or the measurement (Algorithm 1 must find the bar's orientation and which pixels are the bar).
On the synthetic sky every bar's angle is known, so each map can be measured along the TRUE axis
(:func:`galaxy_xai.bars.profiles.axis_lengths`: the map's mean over a strip along the axis, folded
about the centre; the bar ends where it falls below a fraction of its peak), where nothing but the
map can go wrong. The Spearman rho of those lengths with the true length says how much of the
length the maps hold once the hardest step (finding the bar) is given away. It is a reference, not a
bound: a cleverer estimator that finds the axis itself can still beat one fixed profile rule.
Measured the same way, the twins' maps and the image-only source say whether the models' maps hold
more than a network that learnt nothing, or than the image.

Protocol (:func:`true_axis_rows`): every source is measured as the grid search's chosen setting
measures it (its map source and X_input, the map zeroed outside R90 and renormalised,
:func:`galaxy_xai.bars.barlength.maps_to_measure`); the strip's half width and the fraction are chosen
per source on the validation galaxies by Spearman rho with the true length (the diagnostic uses
the truth anyway; choosing on validation keeps the test score honest), then scored once on the test
galaxies, with 95% bootstrap intervals. Paired on the same test galaxies: each source's true-axis
lengths minus its own estimator's (what the measurement loses), and the explanation's true-axis
lengths minus each other source's.

Lengths are in map pixels here; Spearman rho does not depend on the unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from galaxy_xai import statistics
from galaxy_xai.bars import barlength, profiles

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9)
"""Where the bar ends: the folded profile's first fall below this fraction of its peak. Saliency
maps fade slowly past a bar's end (the best fractions are low), light falls steeply (high)."""

HALF_WIDTHS_PX = (0.5, 1.0, 2.0)
"""Half widths of the strip across the axis, in map pixels: a bar is 2-5 map px wide at 64 px."""


def source_axis_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    setting: barlength.Choice,
    angle_deg: np.ndarray,
    r90_px: float,
    highpass_sigma_px: float = barlength.DEFAULT_HIGHPASS_SIGMA_PX,
) -> np.ndarray:
    """Lengths in map pixels along the axes ``angle_deg`` (n,) of the maps ``setting`` measures:
    (n, len(HALF_WIDTHS_PX), len(FRACTIONS)).

    ``model_maps`` {model: (n, H, W)} and ``grey`` (n, H, W) as :func:`barlength.setting_lengths` takes
    them; the setting's map source and X_input are used, the map is zeroed outside ``r90_px`` (map
    pixels) and the profile runs to it. :data:`barlength.MEAN_LENGTH` averages each model's lengths.
    A map with nothing along the axis gets :data:`barlength.NO_BAR_LENGTH_PX`, like Algorithm 1's floor.
    """
    lengths = [
        profiles.axis_lengths(
            barlength.maps_to_measure(maps, grey, setting.x_input, r90_px), angle_deg, FRACTIONS, HALF_WIDTHS_PX, r90_px
        )
        for maps in barlength.source_maps(model_maps, grey, setting.map_source, highpass_sigma_px)
    ]
    mean = np.mean(lengths, axis=0)
    return np.where(np.isfinite(mean), mean, barlength.NO_BAR_LENGTH_PX)


@dataclass(frozen=True)
class AxisChoice:
    """The strip and fraction chosen on validation: indices into :data:`HALF_WIDTHS_PX` and
    :data:`FRACTIONS`, and the validation Spearman rho with the true length."""

    half_width_index: int
    fraction_index: int
    val_spearman: float

    def to_json(self) -> dict:
        """{half_width_px, fraction, val_spearman_truth}."""
        return {
            "half_width_px": HALF_WIDTHS_PX[self.half_width_index],
            "fraction": FRACTIONS[self.fraction_index],
            "val_spearman_truth": self.val_spearman,
        }


def choose_on_validation(val_lengths: np.ndarray, val_truth: np.ndarray) -> AxisChoice:
    """The (half width, fraction) whose lengths (n, n_half_widths, n_fractions) rank ``val_truth`` (n,)
    best; the first of equals, so the choice is deterministic."""
    n, n_widths, n_fractions = val_lengths.shape
    rho = statistics.spearman_columns(val_lengths.reshape(n, -1), val_truth)
    if not np.isfinite(rho).any():
        raise ValueError("true-axis lengths: no (half width, fraction) gives a finite Spearman rho on validation")
    best = int(np.nanargmax(rho))
    return AxisChoice(best // n_fractions, best % n_fractions, float(rho[best]))


def swapped(diff: statistics.PairedDifference) -> statistics.PairedDifference:
    """b minus a of a paired difference a minus b: the same bootstrap read the other way round (no new draws)."""
    lo, hi = diff.ci95
    return statistics.PairedDifference(-diff.difference, (-hi, -lo), statistics.verdict((-hi, -lo)))


@dataclass(frozen=True)
class AxisSource:
    """One row of the diagnostic: a source's true-axis lengths on the validation and test galaxies
    (each (n, n_half_widths, n_fractions)) and its own estimator's test lengths (n,)."""

    setting: barlength.Choice
    val: np.ndarray
    test: np.ndarray
    own_test: np.ndarray


def true_axis_rows(
    sources: Mapping[str, AxisSource],
    val_truth: np.ndarray,
    test_truth: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    reference: str = "explanation",
) -> dict:
    """The diagnostic's table: for each source, the strip chosen on validation, the test Spearman rho
    of its true-axis lengths with the truth and of its own estimator's, their paired difference, and
    ``reference``'s own-estimator lengths (the headline's) minus its true-axis lengths; then
    ``reference``'s true-axis lengths minus every other source's. Differences are
    :func:`statistics.paired_bootstrap_difference` dicts (difference, ci95, verdict)."""
    if reference not in sources:
        raise ValueError(f"true-axis rows: reference {reference!r} is not among {sorted(sources)}")
    chosen: dict[str, np.ndarray] = {}
    rows: dict[str, dict] = {}
    for name, source in sources.items():
        pick = choose_on_validation(source.val, val_truth)
        lengths = source.test[:, pick.half_width_index, pick.fraction_index]
        chosen[name] = lengths
        ci95 = statistics.bootstrap_ci(lengths, test_truth, "spearman", n_boot, rng)
        minus_own = statistics.paired_bootstrap_difference(lengths, source.own_test, test_truth, "spearman", n_boot, rng)
        # What the reference's lengths as measured (its own estimator, the headline) gain over this row;
        # for the reference's own row that is the pair above read the other way round.
        own_minus = (
            swapped(minus_own)
            if name == reference
            else statistics.paired_bootstrap_difference(sources[reference].own_test, lengths, test_truth, "spearman", n_boot, rng)
        )
        rows[name] = {
            "map_source": source.setting.map_source,
            "x_input": source.setting.x_input,
            **pick.to_json(),
            "spearman_truth": statistics.spearman(lengths, test_truth),
            "spearman_truth_ci95": list(ci95),
            "own_estimator_spearman_truth": statistics.spearman(source.own_test, test_truth),
            "minus_own_estimator": minus_own.to_json(),
            f"{reference}_own_minus": own_minus.to_json(),
        }
    versus = {
        name: statistics.paired_bootstrap_difference(chosen[reference], lengths, test_truth, "spearman", n_boot, rng).to_json()
        for name, lengths in chosen.items()
        if name != reference
    }
    return {"rows": rows, f"{reference}_minus": versus}


ROW_LABELS = {
    "explanation": "the explanation's maps (the models)",
    "random_weights": "the random-weights twins' maps",
    "permuted_labels": "the permuted-label twins' maps",
    "image": "the image alone (the image-only control's source)",
}
"""How the report names the rows."""


def _interval(values: Sequence[float]) -> str:
    return f"[{values[0]:.2f}, {values[1]:.2f}]"


def _difference(diff: Mapping) -> str:
    return f"{diff['difference']:+.3f} {_interval(diff['ci95'])} {diff['verdict']}"


def true_axis_markdown(result: Mapping) -> str:
    """The diagnostic as a Markdown section (``metrics/true_axis.md``, included in report.md)."""
    rows, versus = result["rows"], result["explanation_minus"]
    lines = [
        "# What the maps hold: lengths along the TRUE bar axis",
        "",
        f"Each source's maps measured along each test galaxy's true bar axis (synthetic sky only; "
        f"{result['n_test']} test galaxies, the strip and fraction chosen on {result['n_val']} validation "
        "galaxies): the profile's fall below a fraction of its peak, with nothing for the estimator to find. "
        "Spearman rho with the true length, 95% bootstrap intervals; differences paired on the same galaxies.",
        "",
        "| source | strip half width (map px); fraction | along the true axis | its own estimator | true axis minus own | explanation minus it (true axis) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        against = _difference(versus[name]) if name in versus else "-"
        lines.append(
            f"| {ROW_LABELS.get(name, name)} | {row['half_width_px']:g}; {row['fraction']:g} | "
            f"{row['spearman_truth']:.3f} {_interval(row['spearman_truth_ci95'])} | "
            f"{row['own_estimator_spearman_truth']:.3f} | {_difference(row['minus_own_estimator'])} | {against} |"
        )
    return "\n".join(lines) + "\n"
