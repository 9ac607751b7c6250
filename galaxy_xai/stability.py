"""Rotation stability: does a galaxy's measured bar length survive turning the image?

A bar is a physical object; its length must not depend on how the galaxy sits in the frame. The
check turns each image (before the crop, so no corners are invented), recomputes every model's
saliency map of the turned image, and measures the bar with the settings the grid search chose,
under each linearity rule. The published rule, |Pearson r| of the candidates' row and column
indices, is ~0 for a bar along an image axis, so its stopping point moves with the angle; the
``elongation`` rule does not depend on the angle.

SmoothGrad is stochastic, so part of any spread is its sampling noise: :func:`noise_lengths` measures
that part alone (the unturned galaxy on as many independent noise draws as there are angles), the
control against which the rotation spread is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from galaxy_xai import barlength, saliency, units
from galaxy_xai.config import Config
from galaxy_xai.images import load_images

log = logging.getLogger(__name__)


def _lengths(
    models: Mapping[str, keras.Model],
    images: np.ndarray,
    objids: np.ndarray,
    cfg: Config,
    choice: barlength.Choice,
    draw: int,
    linearities: Sequence[str],
) -> dict[str, np.ndarray]:
    """{linearity: (n,) lengths in 424-px pixels} of ``images`` explained with noise draw ``draw``."""
    maps = {
        name: saliency.explain_xai(model, images, cfg.xai, saliency.draw_seed(cfg.seed, name, draw), keys=objids)
        for name, model in models.items()
    }
    grey = images.mean(axis=-1)
    return {
        rule: units.map_px_to_px424(
            barlength.measure_choice(maps, grey, choice, cfg.images.crop_px, rule), grey.shape[-1], cfg.images.crop_px
        )
        for rule in linearities
    }


def rotation_lengths(
    models: Mapping[str, keras.Model],
    paths: Sequence[str],
    objids: np.ndarray,
    cfg: Config,
    choice: barlength.Choice,
    linearities: Sequence[str] = barlength.LINEARITIES,
) -> dict[str, np.ndarray]:
    """Bar lengths in 424-px pixels of each galaxy at each of ``cfg.xai.rotation.angles_deg``.

    ``models``: the models whose maps ``choice.method`` reads, by name; ``paths``/``objids``: the
    galaxies (n,). Maps use the heatmap stage's explainer, seed and noise stream of draw 0, so the
    unturned galaxy gets the map the heatmap stage stored. Returns {linearity: (n, n_angles)}.
    """
    angles = cfg.xai.rotation.angles_deg
    out = {rule: np.empty((len(paths), len(angles))) for rule in linearities}
    for k, angle in enumerate(angles):
        images = load_images(paths, cfg.images, rotation_deg=angle)
        for rule, lengths in _lengths(models, images, objids, cfg, choice, 0, linearities).items():
            out[rule][:, k] = lengths
        log.info("rotation %g deg: %d galaxies measured with %s", angle, len(paths), ", ".join(linearities))
    return out


def noise_lengths(
    models: Mapping[str, keras.Model],
    paths: Sequence[str],
    objids: np.ndarray,
    cfg: Config,
    choice: barlength.Choice,
    draws: int,
    linearities: Sequence[str] = barlength.LINEARITIES,
) -> dict[str, np.ndarray]:
    """The control of :func:`rotation_lengths`: the unturned galaxies measured on ``draws``
    independent SmoothGrad noise draws (0, 1, ...; 0 and 1 are the heatmap stage's), (n, draws).

    A length's spread over rotations includes the spread SmoothGrad's finite sampling gives on its
    own; this is that part alone, with as many maps per galaxy as there are angles.
    Deterministic explainers give the same length on every draw.
    """
    images = load_images(paths, cfg.images)
    out = {rule: np.empty((len(paths), draws)) for rule in linearities}
    for draw in range(draws):
        for rule, lengths in _lengths(models, images, objids, cfg, choice, draw, linearities).items():
            out[rule][:, draw] = lengths
    log.info("noise control: %d galaxies x %d SmoothGrad draws, unturned", len(paths), draws)
    return out
