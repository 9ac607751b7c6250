"""The test protocol of the bar lengths: the chosen settings on the test galaxies, and the controls.

The saliency maps: each test galaxy is measured on its :data:`N_DRAWS` noise draws with the setting
the grid search chose (``chosen``, :mod:`galaxy_xai.bars.gridsearch`); length = mean of the draws, error =
|l1 - l2| averaged within length deciles (the paper's protocol, :func:`galaxy_xai.results.evaluation.measurement_summary`).

On the same galaxies, the controls (:func:`control_scores`): the image-only length (the grey input
measured with the setting chosen for it on validation, ``chosen_image``), the classical astronomer's
isophote length (the ellipticity peak of photutils' ellipse fit to the sky-subtracted grey input,
within R90, :func:`isophote_lengths`) and the m = 2 Fourier length of the light (the image's Fourier
setting chosen on validation; :data:`FOURIER_LIGHT_DEFAULT` if the grid has no Fourier estimator),
each with its scores and the paired bootstrap difference of the saliency maps against it.
:func:`estimator_scores`: the best validation setting of every (map source, estimator) pair scored on
the test galaxies, the saliency sources on the mean of the draws.

Lengths are in 424-px pixels; arrays are (n,) over the test galaxies, (N_DRAWS, n, S) over draws and settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_xai import units
from galaxy_xai.bars import barlength, profiles
from galaxy_xai.bars.barlength import IMAGE, IMAGE_SOURCES, Choice
from galaxy_xai.results import ensemble, evaluation
from galaxy_xai.xai import heatmaps

N_DRAWS = 2
"""Noise draws of each test galaxy's maps (the heatmap stage stores draws 0 and 1)."""

FOURIER_LIGHT_DEFAULT = Choice(IMAGE, False, estimator=barlength.FOURIER, mask=barlength.R90_MASK, fraction=0.5, floor=0.0)
"""The Fourier length of the light when the grid search has no Fourier setting of the image to choose."""


def _unique(settings) -> list[Choice]:
    return list(dict.fromkeys(settings))


@dataclass(frozen=True)
class TestSettings:
    """The settings the test protocol measures, from the grid search's file.

    ``choice``: the saliency maps' chosen setting; ``choice_image``: the image-only control's;
    ``best``: the best setting of every (map source, estimator) pair with its validation record;
    ``fourier_light``: the Fourier setting of the light; ``members``: the choice applied to each
    model's maps alone (the ensemble curve's members, :mod:`galaxy_xai.results.ensemble`).
    """

    __test__ = False  # not a pytest class

    choice: Choice
    choice_image: Choice
    best: list[tuple[Choice, dict]]
    fourier_light: Choice
    members: tuple[Choice, ...] = ()

    @classmethod
    def read(cls, path: str | Path, models: Sequence[str]) -> TestSettings:
        """The settings in ``metrics/gridsearch.json`` (ValueError naming the file, as :func:`barlength.read_choice`)."""
        choice = barlength.read_choice(path, models)
        choice_image = barlength.read_choice(path, models, "chosen_image")
        best = barlength.read_settings(path, models)
        light = [c for c, _ in best if c.map_source == IMAGE and c.estimator == barlength.FOURIER]
        members = tuple(dataclasses.replace(choice, map_source=m) for m in models)
        return cls(choice, choice_image, best, light[0] if light else FOURIER_LIGHT_DEFAULT, members)

    @property
    def saliency(self) -> list[Choice]:
        """The distinct saliency settings measured on every draw: the choice first."""
        return _unique([self.choice, *(c for c, _ in self.best if c.map_source not in IMAGE_SOURCES), *self.members])

    @property
    def image(self) -> list[Choice]:
        """The distinct settings of the grey input, measured once."""
        return _unique([self.choice_image, self.fourier_light, *(c for c, _ in self.best if c.map_source in IMAGE_SOURCES)])


def saliency_draws(
    heatmap_dir: str | Path,
    models: Sequence[str],
    objids: Sequence[int],
    settings: Sequence[Choice],
    crop_px: int | None,
    linearity: str,
    log=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lengths in 424-px pixels of the test galaxies ``objids`` for each saliency setting on each noise
    draw, (N_DRAWS, n, len(settings)), and their grey inputs (n, H, W) (the same in every draw's file).
    Only the heatmap files of the models the settings need are read."""
    needed = [m for m in models if any(m in s.models_needed(models) for s in settings)]
    out = []
    for draw in range(N_DRAWS):
        maps, grey = heatmaps.read_heatmaps(heatmap_dir, needed, objids, "test", draw=draw)
        if log is not None:
            log.info("draw %d: %d test galaxies, %d settings", draw, len(objids), len(settings))
        lengths = barlength.setting_lengths(maps, grey, settings, crop_px, linearity, progress=True)
        out.append(units.map_px_to_px424(lengths, grey.shape[-1], crop_px))
    return np.stack(out), grey


def image_lengths(
    grey: np.ndarray,
    settings: Sequence[Choice],
    crop_px: int | None,
    linearity: str,
    highpass_sigma_px: float = barlength.DEFAULT_HIGHPASS_SIGMA_PX,
) -> np.ndarray:
    """Lengths in 424-px pixels (n, len(settings)) of the grey inputs (n, H, W) with settings of the
    image sources (:data:`IMAGE_SOURCES`; ``highpass_sigma_px``: the high-pass source's blur)."""
    lengths = barlength.setting_lengths({}, grey, settings, crop_px, linearity, highpass_sigma_px=highpass_sigma_px)
    return units.map_px_to_px424(lengths, grey.shape[-1], crop_px)


def isophote_lengths(grey: np.ndarray, crop_px: int | None, workers: int = 1) -> np.ndarray:
    """The isophote length in 424-px pixels (n,) of each sky-subtracted grey input (n, H, W), within
    R90; NaN where no isophote fits. ``workers`` processes fit them (photutils fits one image at a
    time); the lengths do not depend on it."""
    map_px = grey.shape[-1]
    r90_px = units.r90_map_px(map_px, crop_px)
    lengths = profiles.isophote_bar_lengths(profiles.subtract_sky(grey), r90_px, workers=workers)
    return units.map_px_to_px424(lengths, map_px, crop_px)


def estimator_scores(
    settings: TestSettings,
    draws_px424: np.ndarray,
    image_px424: np.ndarray,
    sample: pd.DataFrame,
    map_px: int,
    crop_px: int | None,
    n_boot: int,
    rng: np.random.Generator,
) -> list[dict]:
    """Every (map source, estimator) pair's best validation setting scored on the test galaxies: the
    setting (:meth:`Choice.to_json`), ``val_rho_image`` and :func:`evaluation.length_scores`.

    ``draws_px424``: (N_DRAWS, n, len(settings.saliency)); ``image_px424``: (n, len(settings.image)).
    """
    rows = []
    for setting, record in settings.best:
        lengths = (
            image_px424[:, settings.image.index(setting)]
            if setting.map_source in IMAGE_SOURCES
            else draws_px424[:, :, settings.saliency.index(setting)].mean(axis=0)
        )
        rows.append(
            {
                **setting.to_json(map_px, crop_px),
                "val_rho_image": record.get("rho_image"),
                **evaluation.length_scores(lengths, sample, n_boot, rng),
            }
        )
    return rows


def control_scores(
    measured_px424: np.ndarray,
    controls: Sequence[tuple[str, Choice | None, np.ndarray]],
    sample: pd.DataFrame,
    map_px: int,
    crop_px: int | None,
    n_boot: int,
    rng: np.random.Generator,
) -> dict:
    """{name: the control's setting, its scores and ``difference``, the saliency lengths minus the
    control's (:func:`evaluation.paired_comparison`)} for each (name, setting or None, lengths (n,))."""
    return {
        name: {
            "setting": None if setting is None else setting.to_json(map_px, crop_px),
            **evaluation.length_scores(lengths, sample, n_boot, rng),
            "difference": evaluation.paired_comparison(measured_px424, lengths, sample, n_boot, rng),
        }
        for name, setting, lengths in controls
    }


def member_lengths(settings: TestSettings, draws_px424: np.ndarray) -> np.ndarray:
    """Each member's lengths in 424-px pixels, the mean of the draws: (n, len(settings.members))."""
    return np.stack([draws_px424[:, :, settings.saliency.index(m)].mean(axis=0) for m in settings.members], axis=1)


def ensemble_scores(
    settings: TestSettings, draws_px424: np.ndarray, sample: pd.DataFrame, n_boot: int, rng: np.random.Generator
) -> dict:
    """The ensemble curve (:func:`galaxy_xai.results.ensemble.ensemble_curve`) of the chosen setting's members
    against the catalogue (``catalogue``) and, where true lengths are known, the truth (``truth``),
    each where at least :data:`galaxy_xai.results.ensemble.MIN_GALAXIES` galaxies have every length and the
    reference; {} with fewer than two models."""
    if len(settings.members) < 2:
        return {}
    lengths = member_lengths(settings, draws_px424)
    names = [m.map_source for m in settings.members]
    references = {"catalogue": sample["length_px424"].to_numpy(dtype=np.float64), "truth": evaluation.true_lengths(sample)}
    measured = np.all(np.isfinite(lengths), axis=1)
    return {
        key: ensemble.ensemble_curve(lengths, reference, n_boot, rng, names)
        for key, reference in references.items()
        if (measured & np.isfinite(reference)).sum() >= ensemble.MIN_GALAXIES
    }


@dataclass(frozen=True)
class TestLengths:
    """Every length of the test galaxies the protocol scores, in 424-px pixels.

    ``draws``: the saliency settings on each noise draw (N_DRAWS, n, len(settings.saliency));
    ``image``: the grey input's settings (n, len(settings.image)); ``isophote``: (n,); ``twins``:
    {twin kind: the chosen setting on its maps, mean of the draws (n,)}; ``segmentation``: the U-Net's
    lengths (n,), None (or all NaN) where there is no ceiling; ``map_px``: the maps' side.
    """

    __test__ = False  # not a pytest class

    draws: np.ndarray
    image: np.ndarray
    isophote: np.ndarray
    twins: dict[str, np.ndarray]
    segmentation: np.ndarray | None
    map_px: int

    @property
    def has_ceiling(self) -> bool:
        return self.segmentation is not None and not np.isnan(self.segmentation).all()


def score_lengths(
    settings: TestSettings,
    lengths: TestLengths,
    sample: pd.DataFrame,
    crop_px: int | None,
    permutations: int,
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict, dict]:
    """The protocol on the test galaxies ``sample`` (:func:`galaxy_xai.data.tables.xai_rows` rows):
    the per-galaxy table (:func:`galaxy_xai.results.evaluation.measurement_summary`'s, plus a
    ``<source>_px424`` column per control), the headline scores (with a ceiling and true lengths also
    ``gap_closed``, :func:`galaxy_xai.results.evaluation.gap_closed`) and the details: ``estimators``
    (:func:`estimator_scores`), ``controls`` (:func:`control_scores`) and ``ensemble``
    (:func:`ensemble_scores`). ``rng`` draws every permutation and bootstrap, in that order."""
    draws = lengths.draws
    per_galaxy, scores = evaluation.measurement_summary(
        draws[:, :, settings.saliency.index(settings.choice)], sample, permutations, rng, n_boot
    )
    per_galaxy["image_px424"] = lengths.image[:, settings.image.index(settings.choice_image)]
    per_galaxy["isophote_px424"] = lengths.isophote
    per_galaxy["fourier_light_px424"] = lengths.image[:, settings.image.index(settings.fourier_light)]
    for kind, twin_px424 in lengths.twins.items():
        per_galaxy[f"{kind}_px424"] = twin_px424
    if lengths.has_ceiling:
        per_galaxy["segmentation_px424"] = lengths.segmentation
    map_px = lengths.map_px
    estimators = estimator_scores(settings, draws, lengths.image, sample, map_px, crop_px, n_boot, rng)
    controls = control_scores(
        per_galaxy["measured_px424"].to_numpy(),
        [
            ("image", settings.choice_image, per_galaxy["image_px424"].to_numpy()),
            ("isophote", None, lengths.isophote),
            ("fourier_light", settings.fourier_light, per_galaxy["fourier_light_px424"].to_numpy()),
            *((kind, settings.choice, twin_px424) for kind, twin_px424 in lengths.twins.items()),
            *([("segmentation", None, lengths.segmentation)] if lengths.has_ceiling else []),
        ],
        sample, map_px, crop_px, n_boot, rng,
    )  # fmt: skip
    ensembles = ensemble_scores(settings, draws, sample, n_boot, rng)
    if lengths.has_ceiling and "true_px424" in per_galaxy:
        # Where the explanation sits between a network that learnt nothing and supervised segmentation.
        scores.update(
            evaluation.gap_closed(per_galaxy["measured_px424"], lengths.twins["random_weights"], lengths.segmentation,
                                  per_galaxy["true_px424"], n_boot, rng)
        )  # fmt: skip
    return per_galaxy, scores, {"estimators": estimators, "controls": controls, "ensemble": ensembles}


def summary_lines(scores: dict, details: dict) -> list[str]:
    """One log line each for the headline, the gap closed, every ensemble curve and every control of
    :func:`score_lengths`' scores and details."""
    s = scores
    truth = f" spearman_truth_image={s['spearman_truth_image']:.3f}" if "spearman_truth_image" in s else ""
    lines = [
        f"rho={s['rho']:.3f} [{s['rho_ci95'][0]:.3f}, {s['rho_ci95'][1]:.3f}] (null {s['rho_null']:.3f}, "
        f"p95 {s['rho_null_p95']:.3f}, p={s['rho_p_value']:.3g}) rho_image={s['rho_image']:.3f} "
        f"[{s['rho_image_ci95'][0]:.3f}, {s['rho_image_ci95'][1]:.3f}] (null p95 {s['rho_image_null_p95']:.3f}, "
        f"p={s['rho_image_p_value']:.3g}) slope={s['slope']:.3f}+-{s['slope_err']:.3f}{truth}"
    ]
    if "gap_closed" in s:
        lo, hi = s["gap_closed_ci95"]
        lines.append(f"gap closed between the random-weights twins and the U-Net: {s['gap_closed']:.2f} [{lo:.2f}, {hi:.2f}]")
    for reference, curve in details["ensemble"].items():
        lines.append(
            f"ensemble curve against the {reference}: Spearman {' / '.join(f'{r:.3f}' for r in curve['spearman'])} "
            f"for 1..{len(curve['k'])} models; {curve['doubled_k']} models: {curve['doubled']:.3f} "
            f"[{curve['doubled_ci95'][0]:.3f}, {curve['doubled_ci95'][1]:.3f}]; asymptote {curve['asymptote']:.3f} "
            f"[{curve['asymptote_ci95'][0]:.3f}, {curve['asymptote_ci95'][1]:.3f}]"
        )
    for name, control in details["controls"].items():
        differences = ", ".join(
            f"{key} {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] {d['verdict']}"
            for key, d in control["difference"].items()
        )
        lines.append(
            f"control {name}: rho_image={control['rho_image']:.3f}, "
            f"spearman_truth_image={control.get('spearman_truth_image', float('nan')):.3f}; saliency minus control: {differences}"
        )
    return lines
