"""The real data layout: file names, columns, the Galaxy Zoo decision tree, and their validation.

This is the only module that knows how the Kaggle, Galaxy Zoo 2 and Hoyle files are laid out
(see the README's "Real data"); the synthetic sky is written in exactly this layout.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from galaxy_xai import units
from galaxy_xai.config import PrepareConfig
from galaxy_xai.units import IMAGE_PX

_T = TypeVar("_T")

# --- file layout, relative to ``data.path`` -------------------------------------------------------
LABELS_CSV = "training_solutions_rev1.csv"
TRAIN_IMAGES = "images_training_rev1"
TEST_IMAGES = "images_test_rev1/images"
GZ2_MAPPING_CSV = "gz2_filename_mapping.csv"
GZ2_IMAGES = "images_gz2/images"
GZ2_SAMPLE_CSV = "gz2sample.csv"
HOYLE_CSV = "hoyle_barlengths.csv"
TRUTH_CSV = "truth.csv"  # synthetic sky only

EXPECTED_LAYOUT = f"""\
<data.path>/
  {LABELS_CSV}        GalaxyID,Class1.1,...,Class11.6
  {TRAIN_IMAGES}/<GalaxyID>.jpg
  {TEST_IMAGES}/<GalaxyID>.jpg          (optional)
  {GZ2_MAPPING_CSV}          objid,sample,asset_id
  {GZ2_IMAGES}/<asset_id>.jpg
  {GZ2_SAMPLE_CSV}                   OBJID,...,PETROR90_R,...,REDSHIFT
  {HOYLE_CSV}           objid,ra,dec,length_avg,length_stdev,width_avg,width_stdev,length_scaled,bar_meas"""

GZ2_MAPPING_COLUMNS = ["objid", "sample", "asset_id"]
HOYLE_COLUMNS = [
    "objid",
    "ra",
    "dec",
    "length_avg",
    "length_stdev",
    "width_avg",
    "width_stdev",
    "length_scaled",
    "bar_meas",
]
GZ2_SAMPLE_REQUIRED = ["OBJID", "RA", "DEC", "PETROR50_R", "PETROR90_R", "REDSHIFT"]

# --- the Galaxy Zoo 2 decision tree: defined in galaxyzoo.py (the config checks xai.target against
# it), re-exported here so catalogue.CLASS_COLUMNS, catalogue.QUESTIONS, ... keep working.
from galaxy_xai.galaxyzoo import (  # noqa: E402, F401
    CLASS_COLUMNS,
    LABEL_COLUMNS,
    N_ANSWERS,
    PARENT,
    QUESTIONS,
    question_columns,
)


def tree_violation(values: np.ndarray) -> np.ndarray:
    """Largest decision-tree violation of each label row.

    ``values`` has shape (n, 37) in :data:`CLASS_COLUMNS` order. For every question, the answers
    must sum to the fraction of the answer that leads to it (1 for questions 1 and 6). Returns
    shape (n,): the largest absolute deviation over the 11 questions, also counting negative
    fractions or fractions above 1 by how far they are outside [0, 1].
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(CLASS_COLUMNS):
        raise ValueError(f"tree_violation: expected shape (n, {len(CLASS_COLUMNS)}), got {values.shape}")
    index = {c: i for i, c in enumerate(CLASS_COLUMNS)}
    worst = np.maximum(np.clip(-values, 0, None), np.clip(values - 1, 0, None)).max(axis=1)
    for q, parent in PARENT.items():
        cols = [index[c] for c in question_columns(q)]
        total = values[:, cols].sum(axis=1)
        expected = 1.0 if parent is None else values[:, index[parent]]
        worst = np.maximum(worst, np.abs(total - expected))
    return worst


# ==================================================================================================
# Reading, validating, joining and splitting the data folder (the ``prepare`` stage's library).
#
# Every reader checks the file and the columns it needs, ignores extra columns, accepts any column
# order and parses IDs exactly (as text -> int64: an 18-digit SDSS objid does not survive float64).
# A file or value that cannot be used raises DataError naming the file, line and column. Galaxies
# that cannot be used (no PETROR90_R, no image, a corrupt JPEG, labels that break the tree) are not
# errors: they are dropped, and every drop is a row (id, file, reason, detail) of a drop table.

GZ2_SAMPLE_USED = ["OBJID", "PETROR90_R", "REDSHIFT"]
"""Columns of ``gz2sample.csv`` the pipeline reads (the real file has many more)."""

HOYLE_USED = ["objid", "length_avg", "length_scaled"]
"""Columns of ``hoyle_barlengths.csv`` the pipeline reads."""

TRUTH_USED = ["set", "id", "bar_length_px424", "bar_length_kpc"]
"""Columns of the synthetic ``truth.csv`` joined onto the bar catalogue."""

SAMPLE_PREFERENCE = ("original", "extra")
"""GZ2 mapping samples in order of preference when an objid has several rows (others come last)."""

IMAGE_REASONS = ("missing_image", "not_a_jpeg", "corrupt_image", "wrong_image_size")
MORPHOLOGY_DROP_REASONS = ("duplicate_id", "tree_violation", *IMAGE_REASONS)
BARS_DROP_REASONS = (
    "duplicate_objid",
    "bad_length_scaled",
    "implausible_length",
    "no_mapping",
    "conflicting_gz2sample_rows",
    "not_in_gz2sample",
    "bad_petror90_r",
    "bad_redshift",
    *IMAGE_REASONS,
)
KAGGLE_SKIP_REASONS = ("not_a_galaxy_id", *IMAGE_REASONS)
"""Why a file of the optional Kaggle test folder is not predicted."""
DROP_COLUMNS = ["id", "file", "reason", "detail"]

DROP_REASON_TEXT = {
    "duplicate_id": f"GalaxyID repeated in {LABELS_CSV} (first row kept)",
    "tree_violation": "rows breaking the Galaxy Zoo decision tree by more than prepare.tree_tolerance = {tolerance:g}",
    "missing_image": "no JPEG at the expected path",
    "not_a_jpeg": "the image file is not a JPEG",
    "corrupt_image": "the JPEG does not decode (e.g. truncated)",
    "wrong_image_size": f"the JPEG is not {IMAGE_PX} x {IMAGE_PX} px",
    "duplicate_objid": f"objid repeated in {HOYLE_CSV} (first row kept)",
    "bad_length_scaled": "length_scaled empty, not finite or not positive",
    "implausible_length": f"length_scaled puts the bar beyond the {IMAGE_PX}-px image (length_px424 > {IMAGE_PX})",
    "no_mapping": f"objid not in {GZ2_MAPPING_CSV}",
    "conflicting_gz2sample_rows": f"OBJID repeated in {GZ2_SAMPLE_CSV} with different PETROR90_R or REDSHIFT",
    "not_in_gz2sample": f"objid not in {GZ2_SAMPLE_CSV}",
    "bad_petror90_r": "PETROR90_R empty, not finite or not positive",
    "bad_redshift": "REDSHIFT empty, not finite or not positive",
    "not_a_galaxy_id": "the file name is not <GalaxyID>.jpg (a positive integer without leading zeros)",
}
"""What each drop reason means, for error messages; ``{tolerance}`` is ``prepare.tree_tolerance``."""

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
"""Columns of ``bars.csv`` (then true_length_px424, true_length_kpc on the synthetic sky)."""

MORPHOLOGY_SPLITS = ("train", "val", "test")
XAI_SPLITS = ("val", "test")
CONTROL_SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data file, folder, column or value is missing or is not what the real layout holds."""


def _layout_error(message: str) -> DataError:
    return DataError(f"{message}\nexpected layout of data.path:\n{EXPECTED_LAYOUT}")


def require_path(data_dir: str | os.PathLike, name: str, kind: str = "file") -> Path:
    """``data_dir / name``, checked to be an existing ``kind`` ('file' or 'folder')."""
    path = Path(data_dir) / name
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise _layout_error(f"{path}: required {kind} not found")
    return path


def _read_csv(path: Path, columns: list[str], text_columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of a CSV in that order (extra columns ignored); ``text_columns`` read as text."""
    try:
        header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        missing = [c for c in columns if c not in header]
        if missing:
            raise _layout_error(
                f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header[:12])}"
                f"{', ...' if len(header) > 12 else ''})"
            )
        frame = pd.read_csv(path, usecols=columns, dtype={c: str for c in text_columns})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV: {err}") from None
    return frame[columns].reset_index(drop=True)


def _row_error(path: Path, row: int, column: str, value: object, expected: str) -> DataError:
    # Line numbers count the header as line 1, so data row i (from 0) is on line i + 2.
    return DataError(
        f"{path}: line {row + 2} (data row {row + 1}): {column} = {value!r}: expected {expected}"
    )


def _parse_ids(values: pd.Series, path: Path, column: str) -> np.ndarray:
    """Text IDs -> int64 (n,), exactly; a value that is not an integer raises DataError naming its row."""
    text = values.astype("string").str.strip()
    ok = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(dtype=bool)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise _row_error(path, row, column, values.iloc[row], "an integer")
    try:
        return text.astype("int64").to_numpy()
    except (OverflowError, ValueError):
        big = np.flatnonzero(text.str.lstrip("+-").str.len().to_numpy() > 18)
        row = int(big[0]) if len(big) else 0
        raise _row_error(path, row, column, values.iloc[row], "an integer within the int64 range") from None


def _parse_floats(values: pd.Series, path: Path, column: str, allow_missing: bool) -> np.ndarray:
    """Numbers -> float64 (n,). Text that is not a number raises; empty cells are NaN if allowed."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy(dtype=bool)
    if not allow_missing:
        bad = bad | ~np.isfinite(numbers.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _row_error(
            path, row, column, values.iloc[row], "a number" if allow_missing else "a finite number"
        )
    return numbers.to_numpy(dtype=float)


def read_labels(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``training_solutions_rev1.csv`` -> GalaxyID (int64) and the 37 vote fractions (float64).

    Columns come back in :data:`LABEL_COLUMNS` order whatever the file's order; every fraction must
    be a finite number (an empty or non-numeric cell raises DataError naming the file and line).
    """
    path = require_path(data_dir, LABELS_CSV)
    raw = _read_csv(path, LABEL_COLUMNS, text_columns=["GalaxyID"])
    out = {"GalaxyID": _parse_ids(raw["GalaxyID"], path, "GalaxyID")}
    for column in CLASS_COLUMNS:
        out[column] = _parse_floats(raw[column], path, column, allow_missing=False)
    return pd.DataFrame(out)


def read_mapping(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``gz2_filename_mapping.csv`` -> objid (int64), sample (str), asset_id (int64), all rows."""
    path = require_path(data_dir, GZ2_MAPPING_CSV)
    raw = _read_csv(path, GZ2_MAPPING_COLUMNS, text_columns=GZ2_MAPPING_COLUMNS)
    return pd.DataFrame(
        {
            "objid": _parse_ids(raw["objid"], path, "objid"),
            "sample": raw["sample"].fillna("").astype(str).str.strip().to_numpy(),
            "asset_id": _parse_ids(raw["asset_id"], path, "asset_id"),
        }
    )


def read_gz2sample(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``gz2sample.csv`` -> OBJID (int64), PETROR90_R (arcsec), REDSHIFT; empty cells become NaN."""
    path = require_path(data_dir, GZ2_SAMPLE_CSV)
    raw = _read_csv(path, GZ2_SAMPLE_USED, text_columns=["OBJID"])
    return pd.DataFrame(
        {
            "OBJID": _parse_ids(raw["OBJID"], path, "OBJID"),
            "PETROR90_R": _parse_floats(raw["PETROR90_R"], path, "PETROR90_R", allow_missing=True),
            "REDSHIFT": _parse_floats(raw["REDSHIFT"], path, "REDSHIFT", allow_missing=True),
        }
    )


def read_hoyle(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``hoyle_barlengths.csv`` -> objid (int64), length_avg (h^-1 kpc), length_scaled (units of 2 R90)."""
    path = require_path(data_dir, HOYLE_CSV)
    raw = _read_csv(path, HOYLE_USED, text_columns=["objid"])
    return pd.DataFrame(
        {
            "objid": _parse_ids(raw["objid"], path, "objid"),
            "length_avg": _parse_floats(raw["length_avg"], path, "length_avg", allow_missing=True),
            "length_scaled": _parse_floats(raw["length_scaled"], path, "length_scaled", allow_missing=True),
        }
    )


def count_files(folder: str | os.PathLike, suffix: str = ".jpg") -> int:
    """Number of ``*suffix`` files directly in ``folder`` (0 if it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(suffix))
    except FileNotFoundError:
        return 0


# --- images ---------------------------------------------------------------------------------------


def image_problem(path: str, decode: bool = True, expected_px: int = IMAGE_PX) -> str:
    """Why the JPEG at ``path`` is unusable, as one of :data:`IMAGE_REASONS`, or '' if it is fine.

    Without ``decode`` only existence is checked. With it the whole file is decoded, so a truncated
    file fails here (Pillow refuses truncated data) rather than in the middle of training.
    """
    if not os.path.isfile(path):
        return "missing_image"
    if not decode:
        return ""
    try:
        with Image.open(path) as image:
            image.load()
            fmt, size = image.format, image.size
    except (OSError, SyntaxError, ValueError):
        return "corrupt_image"
    if fmt != "JPEG":
        return "not_a_jpeg"
    if size != (expected_px, expected_px):
        return "wrong_image_size"
    return ""


def check_jpegs(
    paths: list[str],
    decode: bool = True,
    expected_px: int = IMAGE_PX,
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """:func:`image_problem` of every path, shape (n,) of str ('' where fine), in input order.

    Decoding runs in a thread pool: Pillow releases the GIL while decoding, so threads use every
    core without the start-up cost of processes.
    """
    if not decode:
        return np.array([image_problem(p, decode=False) for p in paths], dtype=object)
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: image_problem(p, True, expected_px), paths)
        problems = list(
            tqdm(results, total=len(paths), desc="decode JPEGs", unit="img", disable=not progress)
        )
    return np.array(problems, dtype=object)


# --- the optional Kaggle test folder --------------------------------------------------------------

_GALAXY_ID_STEM = re.compile(r"[1-9][0-9]{0,17}")  # at most 18 digits: always within int64

KAGGLE_SKIPPED_COLUMNS = ["file", "reason"]


def galaxy_id_from_filename(path: str | os.PathLike) -> int | None:
    """The GalaxyID of an image named ``<GalaxyID>.jpg`` in any folder, or None if the name is not one.

    A GalaxyID is a positive integer written without sign or leading zeros (so two file names never
    name the same galaxy); Kaggle's have 6 digits.
    """
    stem = Path(path).stem
    return int(stem) if _GALAXY_ID_STEM.fullmatch(stem) else None


@dataclass(frozen=True)
class KaggleTestImages:
    """The JPEGs of the optional Kaggle test folder: those to predict, and those skipped with why."""

    folder: Path
    n_files: int
    """``*.jpg`` files found in ``folder``."""
    galaxy_ids: np.ndarray
    """(n,) int64 GalaxyIDs of the usable files, ascending."""
    paths: list[str]
    """(n,) paths of the usable files, aligned with ``galaxy_ids``."""
    skipped: pd.DataFrame
    """One row per skipped file (:data:`KAGGLE_SKIPPED_COLUMNS`; reason one of :data:`KAGGLE_SKIP_REASONS`)."""

    @property
    def counts(self) -> dict:
        """Files found, files predicted (the usable ones) and files skipped per reason (0 included)."""
        return {
            "images": self.n_files,
            "predicted": len(self.paths),
            "skipped": _reason_counts(self.skipped, KAGGLE_SKIP_REASONS),
        }


def kaggle_test_images(
    data_dir: str | os.PathLike, decode: bool = True, progress: bool = True
) -> KaggleTestImages | None:
    """Scan ``<data_dir>/images_test_rev1/images/*.jpg``; None if that (optional) folder is absent.

    A file is skipped when its name is not a GalaxyID (:func:`galaxy_id_from_filename`) or, with
    ``decode``, when the whole file does not decode to a 424-px JPEG (:func:`image_problem`), so
    prediction never meets a file it cannot read. Skipped files are listed by file name.
    """
    folder = Path(data_dir) / TEST_IMAGES
    if not folder.is_dir():
        return None
    files = sorted(str(p) for p in folder.glob("*.jpg"))
    ids = [galaxy_id_from_filename(f) for f in files]
    reasons = np.array(["not_a_galaxy_id" if i is None else "" for i in ids], dtype=object)
    named = np.flatnonzero(reasons == "")
    reasons[named] = check_jpegs([files[k] for k in named], decode=decode, progress=progress)
    usable = np.flatnonzero(reasons == "")
    usable = usable[np.argsort([ids[k] for k in usable], kind="stable")]
    bad = np.flatnonzero(reasons != "")
    return KaggleTestImages(
        folder=folder,
        n_files=len(files),
        galaxy_ids=np.array([ids[k] for k in usable], dtype=np.int64),
        paths=[files[k] for k in usable],
        skipped=pd.DataFrame(
            {"file": [files[k] for k in bad], "reason": reasons[bad]}, columns=KAGGLE_SKIPPED_COLUMNS
        ),
    )


# --- dropping, de-duplicating, splitting ---------------------------------------------------------


def drop_rows(
    frame: pd.DataFrame,
    reasons: np.ndarray,
    id_column: str,
    file: str | np.ndarray,
    details: np.ndarray | list | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` by a per-row ``reasons`` array ('' keeps the row).

    ``file`` (one name or one per row) and ``details`` (one per row) describe the dropped rows.
    Returns the kept rows (index reset) and a drop table with :data:`DROP_COLUMNS` for the others.
    """
    n = len(frame)
    reasons = np.asarray(reasons, dtype=object)
    bad = reasons != ""
    files = np.broadcast_to(np.asarray(file, dtype=object), (n,))
    details = np.full(n, "", dtype=object) if details is None else np.asarray(details, dtype=object)
    dropped = pd.DataFrame(
        {
            "id": frame[id_column].to_numpy()[bad],
            "file": files[bad],
            "reason": reasons[bad],
            "detail": details[bad],
        },
        columns=DROP_COLUMNS,
    )
    return frame.loc[~bad].reset_index(drop=True), dropped


def _flag(mask: np.ndarray, reason: str) -> np.ndarray:
    return np.where(np.asarray(mask, dtype=bool), reason, "").astype(object)


def dedupe_mapping(mapping: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One mapping row per objid: prefer :data:`SAMPLE_PREFERENCE`, then sample name, then asset_id.

    Returns (kept rows sorted by objid, the other rows). The choice does not depend on row order.
    """
    rank = (
        mapping["sample"].map({s: i for i, s in enumerate(SAMPLE_PREFERENCE)}).fillna(len(SAMPLE_PREFERENCE))
    )
    ordered = (
        mapping.assign(_rank=rank.to_numpy())
        .sort_values(["objid", "_rank", "sample", "asset_id"], kind="stable")
        .drop(columns="_rank")
    )
    first = ~ordered["objid"].duplicated().to_numpy()
    return ordered[first].reset_index(drop=True), ordered[~first].reset_index(drop=True)


def dedupe_gz2sample(gz2sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ``gz2sample.csv`` row per OBJID, never chosen by file order.

    Rows repeating an OBJID with the same PETROR90_R and REDSHIFT (empty cells equal) collapse to
    one. An OBJID whose rows disagree has no usable photometry: it is left out of the kept rows and
    returned in the conflicts table (OBJID, detail naming each column's distinct values in file
    order, e.g. ``PETROR90_R = 10.2 | 11; REDSHIFT = 0.05``). Returns (kept rows, conflicts).
    """
    distinct = gz2sample.drop_duplicates(GZ2_SAMPLE_USED)
    conflicting = distinct["OBJID"].duplicated(keep=False).to_numpy()
    details = (
        distinct[conflicting]
        .groupby("OBJID", sort=True)
        .agg(lambda values: " | ".join(str(float(v)) for v in pd.unique(values)))  # exact, unlike :g
    )
    conflicts = pd.DataFrame(
        {
            "OBJID": details.index.to_numpy(dtype=np.int64),
            "detail": pd.Series(
                [
                    "; ".join(f"{column} = {row[column]}" for column in ("PETROR90_R", "REDSHIFT"))
                    for _, row in details.iterrows()
                ],
                dtype=object,
            ),
        }
    )
    return distinct[~conflicting].reset_index(drop=True), conflicts


def _split_sizes(n: int, fractions: dict[str, float], what: str) -> dict[str, int]:
    """Rows per split: round(fraction * n) for all but the first split, which takes the rest.

    A split is empty only if its fraction is 0; otherwise an empty split raises DataError.
    """
    names = list(fractions)
    sizes = {name: int(round(fractions[name] * n)) for name in names[1:]}
    sizes = {names[0]: n - sum(sizes.values()), **sizes}
    for name, size in sizes.items():
        if size < 1 and fractions[name] > 0:
            raise DataError(
                f"{what}: the {name!r} split would be empty ({n} galaxies, fraction {fractions[name]:.3g} -> "
                f"{size}); use more data or change the prepare.*_fraction params"
            )
    return sizes


def _drop_summary(dropped: pd.DataFrame, tree_tolerance: float) -> str:
    """'90 tree_violation: <what it means>; 3 missing_image: ...' for a drop table, most frequent first."""
    counts = sorted(dropped["reason"].value_counts().items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(
        f"{n} {reason}: {DROP_REASON_TEXT[reason].format(tolerance=tree_tolerance)}" for reason, n in counts
    )


def _split_after_drops(
    split: Callable[[], _T], name: str, rows: str, n_read: int, dropped: pd.DataFrame, tree_tolerance: float
) -> _T:
    """``split()``, or a DataError that says how many of the ``n_read`` rows were dropped and why.

    ``name`` names the split (as in :func:`_split_sizes`' errors), ``rows`` what was read (e.g.
    'label rows of training_solutions_rev1.csv'); ``dropped`` is the drop table of those rows.
    """
    if n_read and len(dropped) >= n_read:
        raise DataError(
            f"{name}: all {n_read} {rows} were dropped ({_drop_summary(dropped, tree_tolerance)}); "
            "nothing left to split"
        )
    try:
        return split()
    except DataError as err:
        if dropped.empty:
            raise
        raise DataError(
            f"{err}; {len(dropped)} of the {n_read} {rows} were dropped "
            f"({_drop_summary(dropped, tree_tolerance)})"
        ) from None


def _shuffled_positions(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions in a random order that depends on the seed and the set of IDs, not on row order."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("split: IDs must be unique")
    return np.argsort(ids, kind="stable")[rng.permutation(len(ids))]


def split_morphology(ids: np.ndarray, test_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """Random train/val/test labels, shape (n,) of str, aligned with the unique ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    sizes = _split_sizes(
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
    xai = _split_sizes(n, {"test": 1.0, "val": xai_val_fraction}, "bar-catalogue XAI split")
    control_test_fraction = 1.0 - control_train_fraction - control_val_fraction
    control = _split_sizes(
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

    Drops, in order: repeated GalaxyIDs (first kept), rows breaking the decision tree by more than
    ``cfg.tree_tolerance`` (left out of every split: their targets are not vote fractions), and
    galaxies whose image is missing or does not decode. The table has GalaxyID, image_path, the 37
    :data:`CLASS_COLUMNS` and ``split``, sorted by GalaxyID.
    """
    drops = []
    frame, dropped = drop_rows(
        labels, _flag(labels["GalaxyID"].duplicated(), "duplicate_id"), "GalaxyID", LABELS_CSV
    )
    drops.append(dropped)

    violation = tree_violation(frame[CLASS_COLUMNS].to_numpy())
    broken = violation > cfg.tree_tolerance
    frame, dropped = drop_rows(
        frame,
        _flag(broken, "tree_violation"),
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
        "dropped": _reason_counts(dropped, MORPHOLOGY_DROP_REASONS),
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


def prepare_bars(
    hoyle: pd.DataFrame,
    mapping: pd.DataFrame,
    gz2sample: pd.DataFrame,
    data_dir: str | os.PathLike,
    cfg: PrepareConfig,
    seed: int,
    truth: pd.DataFrame | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Hoyle bar catalogue -> (bar table, drop table, counts).

    Joins hoyle objid -> ``mapping`` (one row per objid: see :func:`dedupe_mapping`) -> asset_id ->
    image, and hoyle objid -> gz2sample OBJID (one row per OBJID: see :func:`dedupe_gz2sample`) ->
    PETROR90_R (arcsec), REDSHIFT. A galaxy is dropped for the first of :data:`BARS_DROP_REASONS` it
    meets; ``implausible_length`` is a bar longer than the 424-px image side. Lengths: ``length_px424`` from ``length_scaled``
    (:func:`units.scaled_to_px424`), ``length_kpc`` from that with PETROR90_R and REDSHIFT
    (:func:`units.px424_to_kpc`), the same chain measured lengths go through. With ``truth`` (the
    synthetic sky's truth table) adds ``true_length_px424`` and ``true_length_kpc``.
    """
    drops = []
    frame, dropped = drop_rows(
        hoyle, _flag(hoyle["objid"].duplicated(), "duplicate_objid"), "objid", HOYLE_CSV
    )
    drops.append(dropped)
    frame, dropped = drop_rows(
        frame,
        _flag(~_finite_positive(frame["length_scaled"]), "bad_length_scaled"),
        "objid",
        HOYLE_CSV,
        details=frame["length_scaled"].astype(str).to_numpy(),
    )
    drops.append(dropped)
    # A bar longer than the image side cannot be a bar of this galaxy: a unit or typing error.
    length_px424 = units.scaled_to_px424(frame["length_scaled"].to_numpy())
    frame, dropped = drop_rows(
        frame,
        _flag(length_px424 > IMAGE_PX, "implausible_length"),
        "objid",
        HOYLE_CSV,
        details=[
            f"length_scaled = {s:g} -> length_px424 = {px:g} > {IMAGE_PX}"
            for s, px in zip(frame["length_scaled"], length_px424, strict=True)
        ],
    )
    drops.append(dropped)

    if mapping["objid"].duplicated().any():
        raise ValueError("prepare_bars: the mapping repeats an objid; deduplicate it with dedupe_mapping")
    frame = frame.merge(mapping[["objid", "asset_id"]], on="objid", how="left", validate="one_to_one")
    frame, dropped = drop_rows(frame, _flag(frame["asset_id"].isna(), "no_mapping"), "objid", GZ2_MAPPING_CSV)
    drops.append(dropped)
    frame["asset_id"] = frame["asset_id"].astype("int64")

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
        _flag(frame.pop("_merge").to_numpy() == "left_only", "not_in_gz2sample"),
    ).astype(object)
    frame, dropped = drop_rows(
        frame, reasons, "objid", GZ2_SAMPLE_CSV, details=conflict_detail.fillna("").to_numpy(dtype=object)
    )
    drops.append(dropped)
    for column, reason in (("PETROR90_R", "bad_petror90_r"), ("REDSHIFT", "bad_redshift")):
        frame, dropped = drop_rows(
            frame,
            _flag(~_finite_positive(frame[column]), reason),
            "objid",
            GZ2_SAMPLE_CSV,
            details=frame[column].astype(str).to_numpy(),
        )
        drops.append(dropped)

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

    counts = {
        "rows_read": len(hoyle),
        "dropped": _reason_counts(dropped, BARS_DROP_REASONS),
        "rows": len(frame),
        "xai_split": _value_counts(frame["xai_split"], XAI_SPLITS),
        "control_split": _value_counts(frame["control_split"], CONTROL_SPLITS),
        "control_test_within_xai_test": bool(
            (frame.loc[frame["control_split"] == "test", "xai_split"] == "test").all()
        ),
        "images_decoded": cfg.check_images,
    }
    if truth is not None:
        counts["truth_matched"] = int(frame["true_length_px424"].notna().sum())
    return frame, dropped, counts


def attach_truth(bars: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add ``true_length_px424`` and ``true_length_kpc`` from the truth rows with set == 'gz2', id == objid.

    Galaxies absent from the truth table get NaN; a repeated gz2 id raises DataError.
    """
    missing = [c for c in TRUTH_USED if c not in truth.columns]
    if missing:
        raise DataError(f"{TRUTH_CSV}: missing column(s) {', '.join(missing)}")
    gz2 = truth.loc[truth["set"] == "gz2"]
    ids = gz2["id"].to_numpy(dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{TRUTH_CSV}: an id repeats among the rows with set == 'gz2'")
    lookup = gz2.set_index(ids)
    return bars.assign(
        true_length_px424=bars["objid"].map(lookup["bar_length_px424"]).to_numpy(dtype=float),
        true_length_kpc=bars["objid"].map(lookup["bar_length_kpc"]).to_numpy(dtype=float),
    )


def _reason_counts(dropped: pd.DataFrame, reasons: tuple[str, ...]) -> dict[str, int]:
    """Rows dropped per reason, every known reason listed (0 included) so metrics diffs line up."""
    counts = dropped["reason"].value_counts()
    return {r: int(counts.get(r, 0)) for r in reasons}


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
) -> PreparedData:
    """Read, validate, join and split everything in ``data_dir`` (the real layout).

    All CSVs are read and checked before any image is decoded, so a missing file or column stops
    the run at once. Raises DataError for unusable files; drops (and lists) unusable galaxies.
    """
    log = log or logging.getLogger(__name__)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise _layout_error(f"data.path = {data_dir}: folder not found")
    labels = read_labels(data_dir)
    mapping = read_mapping(data_dir)
    gz2sample = read_gz2sample(data_dir)
    hoyle = read_hoyle(data_dir)
    for folder in (TRAIN_IMAGES, GZ2_IMAGES):
        require_path(data_dir, folder, kind="folder")
    log.info(
        "read %d label rows, %d mapping rows, %d gz2sample rows, %d Hoyle rows from %s",
        len(labels),
        len(mapping),
        len(gz2sample),
        len(hoyle),
        data_dir,
    )

    morphology, morph_dropped, morph_counts = prepare_morphology(labels, data_dir, cfg, seed, progress)
    log.info(
        "morphology: kept %d of %d galaxies, dropped %s",
        len(morphology),
        len(labels),
        _nonzero(morph_counts["dropped"]),
    )
    if morph_counts["tree_violation"]["rows_above_tolerance"]:
        log.warning(
            "left %d label rows breaking the decision tree by more than %g (worst %.3g) out of every split",
            morph_counts["tree_violation"]["rows_above_tolerance"],
            cfg.tree_tolerance,
            morph_counts["tree_violation"]["max_read"],
        )
    kept_mapping, repeated = dedupe_mapping(mapping)
    bars, bars_dropped, bars_counts = prepare_bars(
        hoyle, kept_mapping, gz2sample, data_dir, cfg, seed, truth, progress
    )
    log.info(
        "bars: kept %d of %d galaxies, dropped %s", len(bars), len(hoyle), _nonzero(bars_counts["dropped"])
    )

    metrics = {
        "files": _file_counts(data_dir, labels, mapping, repeated, gz2sample, hoyle),
        "morphology": morph_counts,
        "bars": bars_counts,
        "dropped_ids": {
            "morphology": _ids_by_reason(morph_dropped, MORPHOLOGY_DROP_REASONS),
            "bars": _ids_by_reason(bars_dropped, BARS_DROP_REASONS),
        },
    }
    dropped = pd.concat(
        [
            morph_dropped.assign(table="morphology"),
            bars_dropped.assign(table="bars"),
            _mapping_drops(repeated).assign(table="mapping"),
        ],
        ignore_index=True,
    )[["table", *DROP_COLUMNS]]
    return PreparedData(morphology=morphology, bars=bars, dropped=dropped, metrics=metrics)


def _mapping_drops(repeated: pd.DataFrame) -> pd.DataFrame:
    """Drop table of the mapping rows :func:`dedupe_mapping` set aside."""
    return pd.DataFrame(
        {
            "id": repeated["objid"].to_numpy(),
            "file": GZ2_MAPPING_CSV,
            "reason": "duplicate_mapping_row",
            "detail": (
                "sample=" + repeated["sample"] + " asset_id=" + repeated["asset_id"].astype(str)
            ).to_numpy(),
        },
        columns=DROP_COLUMNS,
    )


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
        LABELS_CSV: {"rows": len(labels)},
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
        GZ2_SAMPLE_CSV: {
            "rows": len(gz2sample),
            "duplicate_rows": int(gz2sample["OBJID"].duplicated().sum()),
            "conflicting_objids": len(dedupe_gz2sample(gz2sample)[1]),
        },
        HOYLE_CSV: {"rows": len(hoyle)},
    }


def _ids_by_reason(dropped: pd.DataFrame, reasons: tuple[str, ...]) -> dict[str, list[int]]:
    return {r: sorted(int(i) for i in dropped.loc[dropped["reason"] == r, "id"]) for r in reasons}


def _nonzero(counts: dict[str, int]) -> str:
    text = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)
    return text or "none"


TRUTH_COLUMNS = [
    "set",
    "id",
    "kind",
    "has_bar",
    "bar_length_px424",
    "bar_length_kpc",
    "bar_angle_deg",
    "bar_axis_ratio",
    "has_arms",
    "n_arms",
    "bulge_fraction",
    "disk_axis_ratio",
    "position_angle_deg",
    "petror90_r",
    "redshift",
]
"""truth.csv columns, written by :mod:`galaxy_xai.synthetic` (whose docstring defines each one)."""


def read_truth(data_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The synthetic sky's ``truth.csv`` (one row per galaxy of every set), or None if absent (real data).

    ``id`` is int64 (GalaxyID or objid), ``set`` / ``kind`` strings, the rest numbers (bar_* NaN
    without a bar). Raises DataError naming the file if a column is missing.
    """
    path = Path(data_dir) / TRUTH_CSV
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"set": str, "id": np.int64, "kind": str})
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(TRUTH_COLUMNS)}"
        )
    return truth
