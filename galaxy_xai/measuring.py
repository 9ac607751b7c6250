"""The test protocol of the bar lengths: the chosen settings on the test galaxies, and the controls.

The saliency maps: each test galaxy is measured on its :data:`N_DRAWS` noise draws with the setting
the grid search chose (``chosen``, :mod:`galaxy_xai.gridsearch`); length = mean of the draws, error =
|l1 - l2| averaged within length deciles (the paper's protocol, :func:`galaxy_xai.evaluation.measurement_summary`).

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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_xai import barlength, ensemble, evaluation, heatmaps, profiles, units
from galaxy_xai.barlength import IMAGE, IMAGE_SOURCES, Choice

N_DRAWS = 2
"""Noise draws of each test galaxy's maps (the heatmap stage stores draws 0 and 1)."""

ISOPHOTE_WORKERS = min(2, os.cpu_count() or 1)
"""Processes fitting isophotes (photutils fits one image at a time); the lengths do not depend on it."""

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
    model's maps alone (the ensemble curve's members, :mod:`galaxy_xai.ensemble`).
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


def isophote_lengths(grey: np.ndarray, crop_px: int | None, workers: int = ISOPHOTE_WORKERS) -> np.ndarray:
    """The isophote length in 424-px pixels (n,) of each sky-subtracted grey input (n, H, W), within
    R90; NaN where no isophote fits."""
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
    """The ensemble curve (:func:`galaxy_xai.ensemble.ensemble_curve`) of the chosen setting's members
    against the catalogue (``catalogue``) and, where true lengths are known, the truth (``truth``),
    each where at least :data:`galaxy_xai.ensemble.MIN_GALAXIES` galaxies have every length and the
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
