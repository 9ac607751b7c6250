"""The ``prepare`` stage's library: validated, joined, split tables from a folder in the real layout.

:func:`prepare_data` reads every raw file (:mod:`galaxy_xai.data.catalogue`), drops the galaxies that
cannot be used (:mod:`galaxy_xai.data.drops`), joins the bar catalogue to its images and photometry,
converts its lengths (:mod:`galaxy_xai.units`) and draws the splits (:mod:`galaxy_xai.data.splits`).
It returns the morphology table, the bar table (:data:`BARS_COLUMNS`), every dropped row and the
counts; :mod:`galaxy_xai.data.tables` writes and reads them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from galaxy_xai import units
from galaxy_xai.config import PrepareConfig
from galaxy_xai.data.catalogue import (
    CLASS_COLUMNS,
    GZ2_IMAGES,
    GZ2_MAPPING_CSV,
    GZ2_SAMPLE_CSV,
    HOYLE_CSV,
    LABELS_CSV,
    TEST_IMAGES,
    TRAIN_IMAGES,
    TRUTH_CSV,
    DataError,
    check_jpegs,
    count_files,
    layout_error,
    read_gz2sample,
    read_hoyle,
    read_labels,
    read_mapping,
    reason_counts,
    require_path,
    tree_violation,
)
from galaxy_xai.data.drops import (
    BARS_DROP_REASONS,
    DROP_COLUMNS,
    KEYED_FILES,
    MORPHOLOGY_DROP_REASONS,
    conflict_drops,
    dedupe_file,
    dedupe_gz2sample,
    dedupe_mapping,
    drop_rows,
    drop_summary,
    flag,
    ids_by_reason,
    mapping_drops,
    repeat_counts,
)
from galaxy_xai.data.splits import CONTROL_SPLITS, MORPHOLOGY_SPLITS, XAI_SPLITS, split_bars, split_morphology
from galaxy_xai.units import IMAGE_PX

_T = TypeVar("_T")

TRUTH_COLUMNS = {
    "bar_length_px424": "true_length_px424",
    "bar_length_kpc": "true_length_kpc",
    "bar_axis_ratio": "true_axis_ratio",
    "bar_angle_deg": "true_angle_deg",
}
"""Columns of the synthetic ``truth.csv`` joined onto the bar catalogue -> their name in ``bars.csv``:
the true bar's length and, for its ellipse (:mod:`galaxy_xai.xai.localisation`), its axis ratio and angle."""

BARS_COLUMNS = [
    "objid",
    "asset_id",
    "image_path",
    "length_scaled",
    "length_avg",
    "PETROR90_R",
    "REDSHIFT",
    "length_px424",
    "length_kpc",
    "xai_split",
    "control_split",
]
"""Columns of ``bars.csv`` (then the values of :data:`TRUTH_COLUMNS` on the synthetic sky)."""


def _split_after_drops(
    split: Callable[[], _T], name: str, rows: str, n_read: int, dropped: pd.DataFrame, tree_tolerance: float
) -> _T:
    """``split()``, or a DataError that says how many of the ``n_read`` rows were dropped and why.

    ``name`` names the split (as in :mod:`galaxy_xai.data.splits`' errors), ``rows`` what was read (e.g.
    'label rows of training_solutions_rev1.csv'); ``dropped`` is the drop table of those rows.
    """
    if n_read and len(dropped) >= n_read:
        raise DataError(
            f"{name}: all {n_read} {rows} were dropped ({drop_summary(dropped, tree_tolerance)}); "
            "nothing left to split"
        )
    try:
        return split()
    except DataError as err:
        if dropped.empty:
            raise
        raise DataError(
            f"{err}; {len(dropped)} of the {n_read} {rows} were dropped "
            f"({drop_summary(dropped, tree_tolerance)})"
        ) from None


# --- the prepared tables --------------------------------------------------------------------------


def _image_paths(data_dir: str | os.PathLike, folder: str, ids: np.ndarray) -> list[str]:
    """Paths usable as-is from where the pipeline runs: ``data_dir/folder/<id>.jpg``."""
    return [str(Path(data_dir) / folder / f"{i}.jpg") for i in ids]


def _drop_bad_images(
    frame: pd.DataFrame, id_column: str, check_images: bool, progress: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop the rows whose ``image_path`` is missing or (with ``check_images``) does not decode."""
    problems = check_jpegs(frame["image_path"].tolist(), decode=check_images, progress=progress)
    return drop_rows(frame, problems, id_column, frame["image_path"].to_numpy())


def _finite_positive(values: pd.Series) -> np.ndarray:
    x = values.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x > 0)


def prepare_morphology(
    labels: pd.DataFrame,
    data_dir: str | os.PathLike,
    cfg: PrepareConfig,
    seed: int,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Labelled galaxies -> (morphology table, drop table, counts).

    Drops, in order: GalaxyIDs repeated with different vote fractions (every row; an exact repeat is
    kept once, :func:`galaxy_xai.data.drops.dedupe_rows`), rows breaking the decision tree by more than
    ``cfg.tree_tolerance`` (left out of every split: their targets are not vote fractions), and
    galaxies whose image is missing or does not decode. The table has GalaxyID, image_path, the 37
    :data:`CLASS_COLUMNS` and ``split``, sorted by GalaxyID.
    """
    frame, conflicts = dedupe_file(labels, LABELS_CSV)
    drops = [conflict_drops(conflicts, "GalaxyID", "duplicate_id", LABELS_CSV)]

    violation = tree_violation(frame[CLASS_COLUMNS].to_numpy())
    broken = violation > cfg.tree_tolerance
    frame, dropped = drop_rows(
        frame,
        flag(broken, "tree_violation"),
        "GalaxyID",
        LABELS_CSV,
        details=[f"{v:.6g}" for v in violation],
    )
    drops.append(dropped)

    frame = frame.sort_values("GalaxyID", kind="stable").reset_index(drop=True)
    frame.insert(1, "image_path", _image_paths(data_dir, TRAIN_IMAGES, frame["GalaxyID"].to_numpy()))
    frame, dropped = _drop_bad_images(frame, "GalaxyID", cfg.check_images, progress)
    drops.append(dropped)

    dropped = pd.concat(drops, ignore_index=True)
    frame["split"] = _split_after_drops(
        lambda: split_morphology(frame["GalaxyID"].to_numpy(), cfg.test_fraction, cfg.val_fraction, seed),
        "morphology split",
        f"label rows of {LABELS_CSV}",
        len(labels),
        dropped,
        cfg.tree_tolerance,
    )
    counts = {
        "rows_read": len(labels),
        "dropped": reason_counts(dropped, MORPHOLOGY_DROP_REASONS),
        "rows": len(frame),
        "split": _value_counts(frame["split"], MORPHOLOGY_SPLITS),
        "tree_violation": {
            "tolerance": cfg.tree_tolerance,
            "rows_above_tolerance": int(broken.sum()),
            "max_read": float(violation.max()) if len(violation) else 0.0,
            "max_kept": float(violation[~broken].max()) if (~broken).any() else 0.0,
        },
        "images_decoded": cfg.check_images,
    }
    return frame, dropped, counts


def _hoyle_rows(hoyle: pd.DataFrame, crop_px: int | None) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The Hoyle rows with one usable length each, and the drop tables of the others (repeats with
    different lengths, a length that is not a positive number or longer than the side the models see)."""
    frame, conflicts = dedupe_file(hoyle, HOYLE_CSV)
    drops = [conflict_drops(conflicts, "objid", "duplicate_objid", HOYLE_CSV)]
    frame, dropped = drop_rows(
        frame,
        flag(~_finite_positive(frame["length_scaled"]), "bad_length_scaled"),
        "objid",
        HOYLE_CSV,
        details=frame["length_scaled"].astype(str).to_numpy(),
    )
    drops.append(dropped)
    # A bar longer than the image side cannot be a bar of this galaxy (a unit or typing error), and
    # one longer than the crop's side is not whole in what the models see: no map can measure it.
    length_px424 = units.scaled_to_px424(frame["length_scaled"].to_numpy())
    side = IMAGE_PX if crop_px is None else crop_px
    seen = "" if crop_px is None else " (images.crop_px: the crop the models see)"
    frame, dropped = drop_rows(
        frame,
        flag(length_px424 > side, "implausible_length"),
        "objid",
        HOYLE_CSV,
        details=[
            f"length_scaled = {s:g} -> length_px424 = {px:g} > {side}{seen}"
            for s, px in zip(frame["length_scaled"], length_px424, strict=True)
        ],
    )
    drops.append(dropped)
    return frame, drops


def _join_mapping(frame: pd.DataFrame, mapping: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` with each objid's ``asset_id`` (its image), and the drop table of objids with none."""
    if mapping["objid"].duplicated().any():
        raise ValueError("prepare_bars: the mapping repeats an objid; deduplicate it with dedupe_mapping")
    frame = frame.merge(mapping[["objid", "asset_id"]], on="objid", how="left", validate="one_to_one")
    frame, dropped = drop_rows(frame, flag(frame["asset_id"].isna(), "no_mapping"), "objid", GZ2_MAPPING_CSV)
    frame["asset_id"] = frame["asset_id"].astype("int64")
    return frame, dropped


def _join_photometry(frame: pd.DataFrame, gz2sample: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """``frame`` with each objid's PETROR90_R (arcsec) and REDSHIFT from gz2sample, and the drop tables
    of objids absent, with conflicting rows, or with a value that is not a positive number."""
    photometry, conflicts = dedupe_gz2sample(gz2sample)
    frame = frame.merge(
        photometry.rename(columns={"OBJID": "objid"}),
        on="objid",
        how="left",
        indicator=True,
        validate="one_to_one",
    )
    conflict_detail = frame["objid"].map(conflicts.set_index("OBJID")["detail"])
    reasons = np.where(
        conflict_detail.notna(),
        "conflicting_gz2sample_rows",
        flag(frame.pop("_merge").to_numpy() == "left_only", "not_in_gz2sample"),
    ).astype(object)
    frame, dropped = drop_rows(
        frame, reasons, "objid", GZ2_SAMPLE_CSV, details=conflict_detail.fillna("").to_numpy(dtype=object)
    )
    drops = [dropped]
    for column, reason in (("PETROR90_R", "bad_petror90_r"), ("REDSHIFT", "bad_redshift")):
        frame, dropped = drop_rows(
            frame,
            flag(~_finite_positive(frame[column]), reason),
            "objid",
            GZ2_SAMPLE_CSV,
            details=frame[column].astype(str).to_numpy(),
        )
        drops.append(dropped)
    return frame, drops


def _bar_counts(frame: pd.DataFrame, dropped: pd.DataFrame, n_read: int, check_images: bool) -> dict:
    """The bar table's counts for ``metrics/data.json``: rows read, dropped per reason, kept per split."""
    counts = {
        "rows_read": n_read,
        "dropped": reason_counts(dropped, BARS_DROP_REASONS),
        "rows": len(frame),
        "xai_split": _value_counts(frame["xai_split"], XAI_SPLITS),
        "control_split": _value_counts(frame["control_split"], CONTROL_SPLITS),
        "control_test_within_xai_test": bool(
            (frame.loc[frame["control_split"] == "test", "xai_split"] == "test").all()
        ),
        "images_decoded": check_images,
    }
    if "true_length_px424" in frame:
        counts["truth_matched"] = int(frame["true_length_px424"].notna().sum())
    return counts


def prepare_bars(
    hoyle: pd.DataFrame,
    mapping: pd.DataFrame,
    gz2sample: pd.DataFrame,
    data_dir: str | os.PathLike,
    cfg: PrepareConfig,
    seed: int,
    truth: pd.DataFrame | None = None,
    progress: bool = True,
    crop_px: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Hoyle bar catalogue -> (bar table, drop table, counts).

    Joins hoyle objid -> ``mapping`` (one row per objid: see :func:`dedupe_mapping`) -> asset_id ->
    image, and hoyle objid -> gz2sample OBJID (one row per OBJID: see :func:`dedupe_gz2sample`) ->
    PETROR90_R (arcsec), REDSHIFT. A galaxy is dropped for the first of :data:`BARS_DROP_REASONS` it
    meets: ``duplicate_objid`` an objid repeated with different lengths (an exact repeat is kept once),
    ``implausible_length`` a bar longer than the side of the image the models see (``crop_px``, the
    centre crop in 424-px pixels; None: the whole 424-px image). Lengths: ``length_px424`` from ``length_scaled``
    (:func:`units.scaled_to_px424`), ``length_kpc`` from that with PETROR90_R and REDSHIFT
    (:func:`units.px424_to_kpc`), the same chain measured lengths go through. With ``truth`` (the
    synthetic sky's truth table) adds the true bar's columns (:data:`TRUTH_COLUMNS`).
    """
    frame, drops = _hoyle_rows(hoyle, crop_px)
    frame, dropped = _join_mapping(frame, mapping)
    drops.append(dropped)
    frame, dropped = _join_photometry(frame, gz2sample)
    drops += dropped

    frame = frame.sort_values("objid", kind="stable").reset_index(drop=True)
    frame["image_path"] = _image_paths(data_dir, GZ2_IMAGES, frame["asset_id"].to_numpy())
    frame, dropped = _drop_bad_images(frame, "objid", cfg.check_images, progress)
    drops.append(dropped)

    dropped = pd.concat(drops, ignore_index=True)
    xai_split, control_split = _split_after_drops(
        lambda: split_bars(
            frame["objid"].to_numpy(),
            cfg.xai_val_fraction,
            cfg.control_train_fraction,
            cfg.control_val_fraction,
            seed,
        ),
        "bar-catalogue split",
        f"rows of {HOYLE_CSV}",
        len(hoyle),
        dropped,
        cfg.tree_tolerance,
    )
    length_px424 = units.scaled_to_px424(frame["length_scaled"].to_numpy())
    frame = frame.assign(
        length_px424=length_px424,
        length_kpc=units.px424_to_kpc(
            length_px424, frame["PETROR90_R"].to_numpy(), frame["REDSHIFT"].to_numpy()
        ),
        xai_split=xai_split,
        control_split=control_split,
    )
    frame = frame[BARS_COLUMNS]
    if truth is not None:
        frame = attach_truth(frame, truth)
    return frame, dropped, _bar_counts(frame, dropped, len(hoyle), cfg.check_images)


def attach_truth(bars: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add the true bar's columns (:data:`TRUTH_COLUMNS`) from the truth rows with set == 'gz2', id == objid.

    Galaxies absent from the truth table get NaN; a repeated gz2 id raises DataError.
    """
    missing = [c for c in ["set", "id", *TRUTH_COLUMNS] if c not in truth.columns]
    if missing:
        raise DataError(f"{TRUTH_CSV}: missing column(s) {', '.join(missing)}")
    gz2 = truth.loc[truth["set"] == "gz2"]
    ids = gz2["id"].to_numpy(dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{TRUTH_CSV}: an id repeats among the rows with set == 'gz2'")
    lookup = gz2.set_index(ids)
    return bars.assign(
        **{name: bars["objid"].map(lookup[column]).to_numpy(dtype=float) for column, name in TRUTH_COLUMNS.items()}
    )


def _value_counts(values: pd.Series, names: tuple[str, ...]) -> dict[str, int]:
    counts = values.value_counts()
    return {name: int(counts.get(name, 0)) for name in names}


@dataclass(frozen=True)


class PreparedData:
    """What the ``prepare`` stage writes: the two tables, every dropped row, and the counts."""

    morphology: pd.DataFrame
    bars: pd.DataFrame
    dropped: pd.DataFrame
    metrics: dict


def prepare_data(
    data_dir: str | os.PathLike,
    cfg: PrepareConfig,
    seed: int,
    truth: pd.DataFrame | None = None,
    progress: bool = True,
    log: logging.Logger | None = None,
    crop_px: int | None = None,
) -> PreparedData:
    """Read, validate, join and split everything in ``data_dir`` (the real layout).

    All CSVs are read and checked before any image is decoded, so a missing file or column stops
    the run at once. Raises DataError for unusable files; drops (and lists) unusable galaxies.
    ``crop_px`` (``images.crop_px``): bars longer than the crop the models see are dropped.
    """
    log = log or logging.getLogger(__name__)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise layout_error(f"data.path = {data_dir}: folder not found")
    labels = read_labels(data_dir)
    mapping = read_mapping(data_dir)
    gz2sample = read_gz2sample(data_dir)
    hoyle = read_hoyle(data_dir)
    for folder in (TRAIN_IMAGES, GZ2_IMAGES):
        require_path(data_dir, folder, kind="folder")
    log.info(
        "read %d label rows, %d mapping rows, %d gz2sample rows, %d Hoyle rows from %s",
        len(labels), len(mapping), len(gz2sample), len(hoyle), data_dir,
    )  # fmt: skip

    morphology, morph_dropped, morph_counts = prepare_morphology(labels, data_dir, cfg, seed, progress)
    log.info("morphology: kept %d of %d galaxies, dropped %s", len(morphology), len(labels), _nonzero(morph_counts["dropped"]))
    if morph_counts["tree_violation"]["rows_above_tolerance"]:
        log.warning(
            "left %d label rows breaking the decision tree by more than %g (worst %.3g) out of every split",
            morph_counts["tree_violation"]["rows_above_tolerance"],
            cfg.tree_tolerance,
            morph_counts["tree_violation"]["max_read"],
        )
    kept_mapping, repeated = dedupe_mapping(mapping)
    bars, bars_dropped, bars_counts = prepare_bars(
        hoyle, kept_mapping, gz2sample, data_dir, cfg, seed, truth, progress, crop_px
    )
    log.info(
        "bars: kept %d of %d galaxies, dropped %s", len(bars), len(hoyle), _nonzero(bars_counts["dropped"])
    )

    files = _file_counts(data_dir, labels, mapping, repeated, gz2sample, hoyle)
    for name, (id_column, _, conflicting) in KEYED_FILES.items():
        if files[name]["duplicate_rows"]:
            log.warning(
                "%s: %d rows repeat an earlier %s: exact repeats kept once, %d %ss whose rows disagree dropped "
                "(their values in dropped.csv)", name, files[name]["duplicate_rows"], id_column, files[name][conflicting],
                id_column,
            )  # fmt: skip
    metrics = {
        "files": files,
        "morphology": morph_counts,
        "bars": bars_counts,
        "dropped_ids": {
            "morphology": ids_by_reason(morph_dropped, MORPHOLOGY_DROP_REASONS),
            "bars": ids_by_reason(bars_dropped, BARS_DROP_REASONS),
        },
    }
    dropped = pd.concat(
        [
            morph_dropped.assign(table="morphology"),
            bars_dropped.assign(table="bars"),
            mapping_drops(repeated).assign(table="mapping"),
        ],
        ignore_index=True,
    )[["table", *DROP_COLUMNS]]
    return PreparedData(morphology=morphology, bars=bars, dropped=dropped, metrics=metrics)


def _file_counts(
    data_dir: Path,
    labels: pd.DataFrame,
    mapping: pd.DataFrame,
    repeated: pd.DataFrame,
    gz2sample: pd.DataFrame,
    hoyle: pd.DataFrame,
) -> dict:
    """Rows read per file, JPEGs per image folder, and the repeats in the mapping and gz2sample."""
    return {
        LABELS_CSV: {"rows": len(labels), **repeat_counts(labels, LABELS_CSV)},
        TRAIN_IMAGES: {"jpegs": count_files(data_dir / TRAIN_IMAGES)},
        TEST_IMAGES: {"jpegs": count_files(data_dir / TEST_IMAGES)},
        GZ2_MAPPING_CSV: {
            "rows": len(mapping),
            "unique_objids": len(mapping) - len(repeated),
            "duplicate_rows": len(repeated),
            "duplicate_rows_by_sample": {
                str(k): int(v) for k, v in repeated["sample"].value_counts().sort_index().items()
            },
        },
        GZ2_IMAGES: {"jpegs": count_files(data_dir / GZ2_IMAGES)},
        GZ2_SAMPLE_CSV: {"rows": len(gz2sample), **repeat_counts(gz2sample, GZ2_SAMPLE_CSV)},
        HOYLE_CSV: {"rows": len(hoyle), **repeat_counts(hoyle, HOYLE_CSV)},
    }


def _nonzero(counts: dict[str, int]) -> str:
    text = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)
    return text or "none"
