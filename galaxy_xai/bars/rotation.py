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
import pandas as pd

from galaxy_xai import units
from galaxy_xai.bars import barlength
from galaxy_xai.config import LINEARITIES, Config
from galaxy_xai.data.images import load_images
from galaxy_xai.xai import explainers
from galaxy_xai.xai.heatmaps import draw_seed

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
    explainer = explainers.from_config(cfg.xai)
    maps = {
        name: explainer(model, images, seed=draw_seed(cfg.seed, name, draw), keys=objids)
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
    linearities: Sequence[str] = LINEARITIES,
) -> dict[str, np.ndarray]:
    """Bar lengths in 424-px pixels of each galaxy at each of ``cfg.xai.rotation.angles_deg``.

    ``models``: the models whose maps ``choice.map_source`` reads, by name; ``paths``/``objids``: the
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
    linearities: Sequence[str] = LINEARITIES,
) -> dict[str, np.ndarray]:
    """The control of :func:`rotation_lengths`: the unturned galaxies measured on ``draws``
    independent SmoothGrad noise draws (0, 1, ...; 0 and 1 are the heatmap stage's), (n, draws).

    A length's spread over rotations includes the spread SmoothGrad's finite sampling gives on its
    own; this is that part alone, with as many maps per galaxy as there are angles.
    A deterministic explainer gives the same length on every draw: it is explained once and repeated.
    """
    images = load_images(paths, cfg.images)
    computed = draws if explainers.from_config(cfg.xai).stochastic else min(draws, 1)
    out = {rule: np.empty((len(paths), draws)) for rule in linearities}
    for draw in range(computed):
        for rule, lengths in _lengths(models, images, objids, cfg, choice, draw, linearities).items():
            out[rule][:, draw] = lengths
    for rule in linearities:
        out[rule][:, computed:] = out[rule][:, :1]
    log.info(
        "noise control: %d galaxies x %d noise draws, unturned%s",
        len(paths), draws, "" if computed == draws else f" ({cfg.xai.method} is deterministic: explained once)",
    )  # fmt: skip
    return out


def pick_rows(n: int, galaxies: int, seed: int) -> np.ndarray:
    """Sorted positions of the min(``galaxies``, n) of n test galaxies checked, a random pick seeded by ``seed``."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(galaxies, n), replace=False))


def lengths_table(
    objids: np.ndarray, angles_deg: Sequence[float], checks: Mapping[str, Mapping[str, np.ndarray]]
) -> pd.DataFrame:
    """One row per galaxy, check, linearity rule and angle (or draw), in 424-px pixels.

    ``checks``: {"rotation": :func:`rotation_lengths`, "noise": :func:`noise_lengths`}, each
    {linearity: (n, len(angles_deg))}. Columns objid, linearity, check, angle_deg (0 for the noise
    check), draw (0 for the rotation check), length_px424.
    """
    n_angles = len(angles_deg)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "objid": np.repeat(objids, n_angles),
                    "linearity": rule,
                    "check": check,
                    "angle_deg": np.tile(angles_deg, len(objids)) if check == "rotation" else 0.0,
                    "draw": 0 if check == "rotation" else np.tile(np.arange(n_angles), len(objids)),
                    "length_px424": v.ravel(),
                }
            )
            for check, lengths in checks.items()
            for rule, v in lengths.items()
        ],
        ignore_index=True,
    )
