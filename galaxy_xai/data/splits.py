"""The random splits of the prepared tables and the control CNN's cross-fitting folds.

Every split is drawn from ``seed`` and depends on the set of IDs, not on their row order, so the
same galaxies get the same labels however the files are sorted. Labels are arrays of str aligned
with the IDs: the morphology table's train / val / test (:func:`split_morphology`), the bar
catalogue's XAI val / test and control train / val / test (:func:`split_bars`), and the control
folds and what each galaxy is to each fold's model (:func:`control_folds`, :func:`fold_roles`).
"""

from __future__ import annotations

import math

import numpy as np

from galaxy_xai.data.catalogue import DataError

MORPHOLOGY_SPLITS = ("train", "val", "test")
"""Labels of the morphology table's ``split`` column."""
XAI_SPLITS = ("val", "test")
"""Labels of the bar table's ``xai_split`` column: choose the measurement on val, report it on test."""
CONTROL_SPLITS = ("train", "val", "test")
"""Labels of the bar table's ``control_split`` column (the paper's single split of the control CNN)."""


def split_sizes(n: int, fractions: dict[str, float], what: str) -> dict[str, int]:
    """Rows per split: round(fraction * n) for all but the first split, which takes the rest.

    Every split is used by a later stage, so an empty one raises DataError naming it (before any
    stage trains), e.g. a validation fraction that rounds to no galaxy.
    """
    names = list(fractions)
    sizes = {name: int(round(fractions[name] * n)) for name in names[1:]}
    sizes = {names[0]: n - sum(sizes.values()), **sizes}
    for name, size in sizes.items():
        if size < 1:
            raise DataError(
                f"{what}: the {name!r} split would be empty ({n} galaxies, fraction {fractions[name]:.3g} -> "
                f"{size}); use more data or change the prepare.*_fraction params"
            )
    return sizes


def _shuffled_positions(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions in a random order that depends on the seed and the set of IDs, not on row order."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("split: IDs must be unique")
    return np.argsort(ids, kind="stable")[rng.permutation(len(ids))]


def split_morphology(ids: np.ndarray, test_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """Random train/val/test labels, shape (n,) of str, aligned with the unique ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    sizes = split_sizes(
        len(ids), {"train": 1.0, "val": val_fraction, "test": test_fraction}, "morphology split"
    )
    order = _shuffled_positions(ids, np.random.default_rng(seed))
    split = np.full(len(ids), "train", dtype=object)
    split[order[: sizes["test"]]] = "test"
    split[order[sizes["test"] : sizes["test"] + sizes["val"]]] = "val"
    return split


def split_bars(
    objids: np.ndarray,
    xai_val_fraction: float,
    control_train_fraction: float,
    control_val_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """XAI val/test and control train/val/test labels for the unique ``objids``, each (n,) of str.

    The control test galaxies are a random subset of the XAI test galaxies, so the saliency method
    and the direct CNN can be compared on the same galaxies; the control train/val galaxies are
    drawn from all the others. This control split is the paper's single split and fold 0 of the
    control CNN's cross-fitting (:func:`control_folds`).
    """
    objids = np.asarray(objids, dtype=np.int64)
    n = len(objids)
    xai = split_sizes(n, {"test": 1.0, "val": xai_val_fraction}, "bar-catalogue XAI split")
    control_test_fraction = 1.0 - control_train_fraction - control_val_fraction
    control = split_sizes(
        n,
        {"train": control_train_fraction, "val": control_val_fraction, "test": control_test_fraction},
        "bar-catalogue control split",
    )
    n_control_test = min(control["test"], xai["test"])
    n_control_val = control["val"] + control["test"] - n_control_test

    rng = np.random.default_rng(seed)
    order = _shuffled_positions(objids, rng)
    xai_split = np.full(n, "test", dtype=object)
    xai_split[order[: xai["val"]]] = "val"

    control_split = np.full(n, "train", dtype=object)
    control_split[order[xai["val"] : xai["val"] + n_control_test]] = "test"
    others = np.concatenate([order[: xai["val"]], order[xai["val"] + n_control_test :]])
    control_split[others[rng.permutation(len(others))][:n_control_val]] = "val"
    return xai_split, control_split


# Streams of the cross-fitting draws, apart from split_bars' (which uses the bare seed).
_FOLDS_STREAM = 1
_ROLES_STREAM = 2
FOLD_ROLES = ("train", "val", "predict")
"""What a galaxy is to one fold's control model: trained on, used for early stopping, or predicted."""


def _check_control_split(control_split: np.ndarray, n: int) -> np.ndarray:
    control_split = np.asarray(control_split, dtype=object)
    if control_split.shape != (n,):
        raise ValueError(f"control_split: expected shape ({n},) like the objids, got {control_split.shape}")
    unknown = sorted(set(control_split) - set(CONTROL_SPLITS))
    if unknown:
        raise DataError(f"control_split: unknown label(s) {unknown}; expected {list(CONTROL_SPLITS)}")
    return control_split


def control_folds(objids: np.ndarray, control_split: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Cross-fitting fold of every bar-catalogue galaxy: (n,) int in 0..folds-1, aligned with ``objids``.

    Fold 0 is the paper's single split's test set (``control_split == 'test'``, which
    :func:`split_bars` draws inside the XAI test split), so fold 0's model is the paper's one model.
    The other galaxies are dealt, in a seeded order that depends on the set of objids and not on the
    row order, into folds 1..folds-1, whose sizes differ by at most one. With the default control
    fractions (0.64 / 0.16 / 0.20) and 5 folds, every fold holds 20% of the catalogue.
    """
    objids = np.asarray(objids, dtype=np.int64)
    control_split = _check_control_split(control_split, len(objids))
    if folds < 2:
        raise ValueError(f"control.folds = {folds}: expected at least 2")
    rest = np.flatnonzero(control_split != "test")
    if not (control_split == "test").any() or len(rest) < folds - 1:
        raise DataError(
            f"control.folds = {folds}: needs at least 1 control test galaxy (fold 0) and {folds - 1} others, "
            f"got {int((control_split == 'test').sum())} and {len(rest)}"
        )
    fold = np.zeros(len(objids), dtype=np.int64)
    order = rest[_shuffled_positions(objids[rest], np.random.default_rng([seed, _FOLDS_STREAM]))]
    fold[order] = 1 + np.arange(len(order)) % (folds - 1)
    return fold


def fold_learning_share(control_train_fraction: float, control_val_fraction: float, folds: int) -> tuple[float, float, int]:
    """How much of the bar catalogue a cross-fitted control model learns from (trains or stops early on).

    Returns (the share for folds 1..folds-1, the share for fold 0: the paper's single split, and the
    fewest folds at which the first is at least the second). Fold 0 holds the control test split,
    ``f = 1 - train - val``; the others share the rest, so each holds ``(1 - f) / (folds - 1)`` and its
    model learns from everything else. Below ``1 / f`` folds (5 at the paper's 0.64 / 0.16 / 0.20) they
    learn from less than the paper's model: with 2 folds, fold 1 holds 80% and learns from 20%, a
    weaker control than the paper's. Fractions as in ``prepare``.
    """
    if folds < 2:
        raise ValueError(f"control.folds = {folds}: expected at least 2")
    test = 1.0 - control_train_fraction - control_val_fraction
    if not 0 < test < 1:
        raise ValueError(f"control test fraction 1 - {control_train_fraction} - {control_val_fraction}: expected in (0, 1)")
    return 1.0 - (1.0 - test) / (folds - 1), 1.0 - test, math.ceil(1.0 / test - 1e-9)


def fold_roles(
    objids: np.ndarray, control_split: np.ndarray, fold_of: np.ndarray, fold: int, seed: int
) -> np.ndarray:
    """What each galaxy is to fold ``fold``'s control model, (n,) of :data:`FOLD_ROLES`.

    'predict' is exactly the galaxies of the fold (``fold_of == fold``, see :func:`control_folds`):
    the model never trains or stops early on them. Fold 0 keeps the paper split's train / val
    (``control_split``). Any other fold splits the galaxies outside it into train / val at the paper
    split's validation share (val / (train + val): 0.16 / 0.80 = 20% by default), in a seeded order
    drawn per fold.
    """
    objids = np.asarray(objids, dtype=np.int64)
    control_split = _check_control_split(control_split, len(objids))
    fold_of = np.asarray(fold_of)
    if fold_of.shape != objids.shape:
        raise ValueError(f"fold_of: expected shape {objids.shape} like the objids, got {fold_of.shape}")
    predict = fold_of == fold
    if not predict.any():
        raise ValueError(f"fold {fold}: no galaxy in it (folds present: {sorted(set(fold_of.tolist()))})")
    if fold == 0:
        if not np.array_equal(predict, control_split == "test"):
            raise ValueError("fold 0 must be the control test split (control_split == 'test'): see control_folds")
        return np.where(predict, "predict", control_split).astype(object)
    n_train, n_val = int((control_split == "train").sum()), int((control_split == "val").sum())
    others = np.flatnonzero(~predict)
    n_fold_val = min(len(others) - 1, max(1, round(n_val / max(n_train + n_val, 1) * len(others))))
    if n_fold_val < 1:
        raise DataError(f"fold {fold}: {len(others)} galaxies outside it; need at least 2 to train and validate")
    order = others[_shuffled_positions(objids[others], np.random.default_rng([seed, _ROLES_STREAM, fold]))]
    roles = np.full(len(objids), "predict", dtype=object)
    roles[order[:n_fold_val]] = "val"
    roles[order[n_fold_val:]] = "train"
    return roles
