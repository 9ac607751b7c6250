"""The heatmap files ``data/heatmaps/<model>.npz``: the one module that knows their layout.

One file per model, written by the ``heatmap`` stage, holding every bar-catalogue galaxy's map:
the validation galaxies once (draw 0), the test galaxies twice with independent SmoothGrad noise
(draws 0 and 1, the paper's test protocol). Arrays (:data:`ARRAYS`): maps float16 (m, H, W) in
[0, 1], objid int64 (m,), split '<U4' (m,) 'val'/'test', draw int8 (m,), grey float16 (m, H, W)
(the channel mean of the model input), and the 0-d strings model, method and attribution.

This module imports no TensorFlow: the stages that only read maps stay light. :func:`heatmap_set`
takes the explainer (a :mod:`galaxy_xai.explainers` object) as an argument.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from galaxy_xai.io import write_npz

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
"""The XAI splits a heatmap file holds: validation (draw 0) and test (draws 0 and 1)."""

ROW_ARRAYS = ("maps", "objid", "split", "draw", "grey")
"""The arrays with one entry per stored map (m rows)."""

ARRAYS = (*ROW_ARRAYS, "model", "method", "attribution")
"""Every array of a heatmap file, in the order they are written: the row arrays, then 0-d strings."""


class Explainer(Protocol):
    """What :func:`heatmap_set` needs of an explainer (see :mod:`galaxy_xai.explainers`)."""

    name: str
    attribution: str
    stochastic: bool

    def __call__(
        self, model: Any, images: np.ndarray, seed: int = 0, keys: np.ndarray | None = None, progress: bool = False
    ) -> np.ndarray: ...


def draw_seed(seed: int, model_name: str, draw: int) -> int:
    """The SmoothGrad seed of one noise draw of one model, from the configured seed.

    The model name enters the seed so that each model gets its own noise, as each model had in the
    paper (independent draws); crc32 keeps it stable across Python processes.
    """
    words = np.random.SeedSequence([int(seed), zlib.crc32(model_name.encode()), int(draw)]).generate_state(1)
    return int(words[0])


def heatmap_set(
    explainer: Explainer,
    model: Any,
    model_name: str,
    images: np.ndarray,
    objids: np.ndarray,
    splits: np.ndarray,
    seed: int,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The arrays of ``data/heatmaps/<model>.npz`` (:data:`ARRAYS`): validation once, test twice.

    ``explainer`` explains ``model`` (a keras model named ``model_name``); ``images`` float
    (n, H, W, 3) model inputs, ``objids`` int (n,), ``splits`` (n,) of 'val' / 'test'. Draw 0 covers
    all n galaxies in the given order; draw 1 repeats the test galaxies with an independent seed
    (:func:`draw_seed`; deterministic explainers copy draw 0). Noise streams are keyed by objid.
    """
    objids = np.asarray(objids, dtype=np.int64)
    unknown = sorted(set(np.asarray(splits, dtype=str).tolist()) - set(SPLITS))
    if unknown:
        raise ValueError(f"splits: unexpected values {unknown}; expected {' / '.join(SPLITS)}")
    splits = np.asarray(splits).astype("<U4")
    if not len(objids) == len(splits) == len(images):
        raise ValueError(
            f"{len(images)} images, {len(objids)} objids and {len(splits)} splits: expected equal lengths"
        )

    def draw_maps(draw_images: np.ndarray, draw_objids: np.ndarray, draw: int) -> np.ndarray:
        log.info("%s: %s maps of %d galaxies, draw %d", model_name, explainer.name, len(draw_images), draw)
        seed_of_draw = draw_seed(seed, model_name, draw)
        return explainer(model, draw_images, seed=seed_of_draw, keys=draw_objids, progress=progress)

    test = np.flatnonzero(splits == "test")
    first = draw_maps(images, objids, 0)
    second = draw_maps(images[test], objids[test], 1) if explainer.stochastic and len(test) else first[test]
    rows = np.concatenate([np.arange(len(objids)), test])
    grey = np.asarray(images).mean(axis=-1).astype(np.float16)
    return {
        "maps": np.concatenate([first, second]).astype(np.float16),
        "objid": objids[rows],
        "split": splits[rows],
        "draw": np.repeat(np.array([0, 1], dtype=np.int8), [len(objids), len(test)]),
        "grey": grey[rows],
        "model": np.array(model_name),
        "method": np.array(explainer.name),
        "attribution": np.array(explainer.attribution),
    }


def write_heatmaps(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one model's heatmap file (uncompressed, atomically) from :func:`heatmap_set`'s arrays.

    ValueError if ``arrays`` does not hold exactly :data:`ARRAYS`.
    """
    if set(arrays) != set(ARRAYS):
        raise ValueError(f"{path}: heatmap arrays {sorted(arrays)}, expected {sorted(ARRAYS)}")
    write_npz(path, **{name: arrays[name] for name in ARRAYS})


def read_heatmaps(
    heatmap_dir: str | Path, models: Sequence[str], objids: Sequence[int], split: str, draw: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Maps of ``models`` for ``objids`` (in that order) of one split and noise draw.

    Returns ({model: maps (n, H, W) float16}, grey (n, H, W) float16 from the first model's file).
    Raises ValueError naming the file when a galaxy is missing or repeated, or shapes disagree.
    """
    objids = np.asarray(objids, dtype=np.int64)
    maps: dict[str, np.ndarray] = {}
    grey = None
    for name in models:
        path = Path(heatmap_dir) / f"{name}.npz"
        if not path.is_file():
            raise ValueError(f"{path}: heatmap file of model {name!r} not found")
        with np.load(path) as npz:
            missing_keys = set(ROW_ARRAYS) - set(npz.files)
            if missing_keys:
                raise ValueError(f"{path}: missing arrays {sorted(missing_keys)}")
            select = (npz["split"] == split) & (npz["draw"] == draw)
            ids = npz["objid"][select]
            if np.unique(ids).size != ids.size:
                raise ValueError(f"{path}: objid repeated within split={split!r}, draw={draw}")
            position = {int(o): i for i, o in enumerate(ids)}
            absent = [int(o) for o in objids if int(o) not in position]
            if absent:
                raise ValueError(
                    f"{path}: no {split!r} map (draw {draw}) for {len(absent)} galaxies, e.g. objid {absent[0]}"
                )
            where = np.flatnonzero(select)[[position[int(o)] for o in objids]]
            maps[name] = npz["maps"][where]
            if grey is None:
                grey = npz["grey"][where]
        if maps[name].shape != maps[models[0]].shape:
            raise ValueError(f"{path}: maps of shape {maps[name].shape}, expected {maps[models[0]].shape}")
    if grey is None:
        raise ValueError("read_heatmaps: expected at least one model")
    return maps, grey
