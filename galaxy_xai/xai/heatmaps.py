"""The heatmap files ``data/heatmaps/<model>.npz``: the one module that knows their layout.

One file per model, written by the ``heatmap`` stage, holding every bar-catalogue galaxy's map:
the validation galaxies once (draw 0), the test galaxies twice with independent SmoothGrad noise
(draws 0 and 1, the paper's test protocol). Arrays (:data:`ARRAYS`): maps float16 (m, H, W) in
[0, 1], objid int64 (m,), split '<U4' (m,) 'val'/'test', draw int8 (m,), grey float16 (m, H, W)
(the channel mean of the model input), and the 0-d strings model, method and attribution.

Shards (``heatmap.shards``): with n shards, the ``heatmap_shard`` stages each explain one
contiguous block of the bar catalogue's rows (:func:`shard_rows`) and write a shard file
``data/heatmap_shards/<model>/<i>.npz`` (:data:`ARRAYS` plus the 0-d ints :data:`SHARD_ARRAYS`);
the ``heatmap`` stage checks them against the catalogue and concatenates them
(:func:`merge_shards`) into the same file one unsharded run writes. A galaxy's map does not depend
on which galaxies share its shard: its noise is keyed by (seed, model, draw, objid) and each map
is normalised on its own, so only floating-point summation order (the batch composition) may move
a map by a float16 step.

This module imports no TensorFlow: the stages that only read maps stay light. :func:`heatmap_set`
takes the explainer (a :mod:`galaxy_xai.xai.explainers` object) as an argument.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from galaxy_xai.config import MODEL_KINDS
from galaxy_xai.io import read_npz, write_npz

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
"""The XAI splits a heatmap file holds: validation (draw 0) and test (draws 0 and 1)."""

ROW_ARRAYS = ("maps", "objid", "split", "draw", "grey")
"""The arrays with one entry per stored map (m rows)."""

META_ARRAYS = ("model", "method", "attribution")
"""The 0-d strings of a heatmap file: every shard of one model must agree on them."""

ARRAYS = (*ROW_ARRAYS, *META_ARRAYS)
"""Every array of a heatmap file, in the order they are written: the row arrays, then 0-d strings."""

SHARD_ARRAYS = ("shard", "shards")
"""The 0-d ints a shard file holds besides :data:`ARRAYS`: its index i and the shard count n."""


class Explainer(Protocol):
    """What :func:`heatmap_set` needs of an explainer (see :mod:`galaxy_xai.xai.explainers`)."""

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


HEATMAP_FILE = "a heatmap file (.npz) written by the heatmap stage"
SHARD_FILE = "a heatmap shard (.npz) written by the heatmap_shard stage"


def nonfinite_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """Which stored map (or grey input) holds NaN or infinite values, named by objid, split and draw;
    None if every value is finite. (An explainer that met a NaN gradient would store such a map, and
    a later stage would fail on it far from its cause.)"""
    for key in ("maps", "grey"):
        values = np.asarray(arrays[key])
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            return (
                f"{int(bad.sum())} {key} with NaN or infinite values, first objid {int(arrays['objid'][row])} "
                f"(split {str(arrays['split'][row])!r}, draw {int(arrays['draw'][row])}); expected finite values"
            )
    return None


def _check_finite(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    if problem := nonfinite_problem(arrays):
        raise ValueError(f"{path}: {problem}")


def write_heatmaps(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one model's heatmap file (uncompressed, atomically) from :func:`heatmap_set`'s arrays.

    ValueError if ``arrays`` does not hold exactly :data:`ARRAYS` or a map is not finite.
    """
    if set(arrays) != set(ARRAYS):
        raise ValueError(f"{path}: heatmap arrays {sorted(arrays)}, expected {sorted(ARRAYS)}")
    _check_finite(path, arrays)
    write_npz(path, **{name: arrays[name] for name in ARRAYS})


def kind_dir(heatmap_dir: str | Path, kind: str) -> Path:
    """The folder of one kind of model's heatmap files under ``heatmap_dir`` (``data/heatmaps``):
    ``<heatmap_dir>/<kind>``, ``kind`` one of :data:`galaxy_xai.config.MODEL_KINDS`."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")
    return Path(heatmap_dir) / kind


def read_heatmaps(
    heatmap_dir: str | Path, models: Sequence[str], objids: Sequence[int], split: str, draw: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Maps of ``models`` for ``objids`` (in that order) of one split and noise draw.

    Returns ({model: maps (n, H, W) float16}, grey (n, H, W) float16 from the first model's file).
    Raises ValueError naming the file when it is missing or unreadable (:func:`galaxy_xai.io.read_npz`),
    a galaxy is missing or repeated, one of its maps is not finite (naming the objid), or shapes disagree.
    """
    objids = np.asarray(objids, dtype=np.int64)
    maps: dict[str, np.ndarray] = {}
    grey = None
    for name in models:
        path = Path(heatmap_dir) / f"{name}.npz"
        if not path.is_file():
            raise ValueError(f"{path}: heatmap file of model {name!r} not found")
        npz = read_npz(path, HEATMAP_FILE)
        missing_keys = set(ROW_ARRAYS) - set(npz)
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
        _check_finite(path, {key: npz[key][where] for key in ROW_ARRAYS})
        maps[name] = npz["maps"][where]
        if grey is None:
            grey = npz["grey"][where]
        if maps[name].shape != maps[models[0]].shape:
            raise ValueError(f"{path}: maps of shape {maps[name].shape}, expected {maps[models[0]].shape}")
    if grey is None:
        raise ValueError("read_heatmaps: expected at least one model")
    return maps, grey


# --- shards ------------------------------------------------------------------------------------------


def shard_rows(n_rows: int, shard: int, n_shards: int) -> np.ndarray:
    """Row indices int64 (m,) of the bar catalogue that shard ``shard`` of ``n_shards`` explains.

    Contiguous blocks in catalogue order whose sizes differ by at most one (the first
    ``n_rows mod n_shards`` shards have one row more), so shards 0, 1, ..., n - 1 concatenated are
    the catalogue in order. Depends only on the three numbers. ValueError for a shard outside
    [0, n_shards) or more shards than rows (a shard would be empty).
    """
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} of {n_shards}: expected 0 <= shard < n_shards")
    if n_shards > n_rows:
        raise ValueError(
            f"heatmap.shards: {n_shards} shards of a bar catalogue of {n_rows} galaxies: expected at most one shard per galaxy"
        )
    size, extra = divmod(n_rows, n_shards)
    start = shard * size + min(shard, extra)
    return np.arange(start, start + size + (shard < extra), dtype=np.int64)


def write_heatmap_shard(path: str | Path, arrays: dict[str, np.ndarray], shard: int, n_shards: int) -> None:
    """Write shard ``shard`` of ``n_shards`` of one model's heatmaps (:func:`heatmap_set`'s arrays
    of that shard's rows) with its index and count (:data:`SHARD_ARRAYS`)."""
    if set(arrays) != set(ARRAYS):
        raise ValueError(f"{path}: heatmap arrays {sorted(arrays)}, expected {sorted(ARRAYS)}")
    _check_finite(path, arrays)
    index = {"shard": np.array(shard, dtype=np.int64), "shards": np.array(n_shards, dtype=np.int64)}
    write_npz(path, **{name: arrays[name] for name in ARRAYS}, **index)


def read_heatmap_shard(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a shard file (:data:`ARRAYS` and :data:`SHARD_ARRAYS`), loaded into memory.

    ValueError naming the file when it is missing, unreadable (:func:`galaxy_xai.io.read_npz`: empty,
    truncated, another format), its arrays are not exactly those, or a map is not finite (naming the objid).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: heatmap shard not found (run its heatmap_shard stage)")
    arrays = read_npz(path, SHARD_FILE, arrays={*ARRAYS, *SHARD_ARRAYS})
    _check_finite(path, arrays)
    return arrays


def _shard_problem(arrays: dict[str, np.ndarray], objids: np.ndarray, splits: np.ndarray) -> str | None:
    """What is wrong with one shard's rows, expected to be ``objids`` (m,) with ``splits`` (m,) at
    draw 0, then the test ones at draw 1 (:func:`heatmap_set`'s layout); None if nothing."""
    draw = np.asarray(arrays["draw"])
    test = splits == "test"
    expected_ids = np.concatenate([objids, objids[test]])
    expected_draw = np.repeat(np.array([0, 1], dtype=np.int8), [len(objids), int(test.sum())])
    if not len(arrays["objid"]) == len(arrays["split"]) == len(draw) == len(arrays["maps"]) == len(arrays["grey"]):
        return "row arrays of different lengths"
    if len(draw) != len(expected_draw) or not np.array_equal(arrays["objid"], expected_ids):
        found = np.asarray(arrays["objid"], dtype=np.int64)
        ids, counts = np.unique(found, return_counts=True)
        want_ids, want_counts = np.unique(expected_ids, return_counts=True)
        both = np.isin(ids, want_ids)
        miscounted = ids[both][counts[both] != want_counts[np.isin(want_ids, ids)]]
        details = [
            f"{what} objid {values[:5].tolist()}{' ...' if len(values) > 5 else ''}"
            for what, values in (
                ("missing", np.setdiff1d(want_ids, ids)),
                ("unexpected", np.setdiff1d(ids, want_ids)),
                ("wrong number of draws (val 1, test 2) of", miscounted),
            )
            if len(values)
        ] or ["other order"]
        return (
            f"{len(found)} rows, expected {len(expected_ids)} (its {len(objids)} catalogue galaxies once, "
            f"the {int(test.sum())} test ones twice, in catalogue order): {'; '.join(details)}"
        )
    if not np.array_equal(draw, expected_draw):
        return "draws out of order: expected every galaxy at draw 0, then the test galaxies at draw 1"
    if not np.array_equal(arrays["split"], np.concatenate([splits, splits[test]])):
        return "split column disagrees with the bar catalogue's xai_split"
    return None


def merge_shards(
    shards: Sequence[tuple[str, dict[str, np.ndarray]]], objids: np.ndarray, splits: np.ndarray
) -> dict[str, np.ndarray]:
    """One model's heatmap arrays (:data:`ARRAYS`) from all its shards, in shard order.

    ``shards``: (name for messages, e.g. the file; arrays of :func:`read_heatmap_shard`) of shards
    0, 1, ..., n - 1; ``objids`` int (N,) and ``splits`` (N,) 'val' / 'test' the bar catalogue in
    row order. Each shard must say it is shard i of n, agree with shard 0 on model, method,
    attribution and map shape, and hold exactly its rows of the catalogue (:func:`shard_rows`). The
    result has the row order of one unsharded :func:`heatmap_set`: every galaxy at draw 0 in
    catalogue order, then the test galaxies at draw 1. ValueError naming the shard otherwise.
    """
    objids = np.asarray(objids, dtype=np.int64)
    splits = np.asarray(splits).astype("<U4")
    n_shards = len(shards)
    if n_shards == 0:
        raise ValueError("merge_shards: expected at least one shard")
    first_name, first = shards[0]
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    for i, (name, arrays) in enumerate(shards):
        if (int(arrays["shard"]), int(arrays["shards"])) != (i, n_shards):
            raise ValueError(
                f"{name}: shard {int(arrays['shard'])} of {int(arrays['shards'])}, expected shard {i} of {n_shards} "
                "(written under another heatmap.shards: rerun its heatmap_shard stage)"
            )
        for key in META_ARRAYS:
            if str(arrays[key]) != str(first[key]):
                raise ValueError(f"{name}: {key} {str(arrays[key])!r}, but {first_name} has {str(first[key])!r}")
        for key in ("maps", "grey"):
            if arrays[key].shape[1:] != first[key].shape[1:]:
                raise ValueError(f"{name}: {key} of shape {arrays[key].shape[1:]}, but {first_name} has {first[key].shape[1:]}")
        rows = shard_rows(len(objids), i, n_shards)
        if problem := _shard_problem(arrays, objids[rows], splits[rows]):
            raise ValueError(f"{name}: not shard {i} of {n_shards} of the bar catalogue (rows {rows[0]}-{rows[-1]}): {problem}")
        parts.append((arrays, np.asarray(arrays["draw"]) == 0))
    merged = {
        key: np.concatenate([a[key][at_0] for a, at_0 in parts] + [a[key][~at_0] for a, at_0 in parts])
        for key in ROW_ARRAYS
    }
    return {**merged, **{key: np.asarray(first[key]) for key in META_ARRAYS}}
