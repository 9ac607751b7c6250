"""Atomic, deterministic writers shared by every stage, and the one reader of each file format.

Readers (:func:`read_npz`, :func:`load_model`, :func:`read_csv`, :func:`read_json`) turn any
failure to decode a file (missing, empty, truncated, another format, corrupt inside) into a
``ValueError`` that names the file and what was expected, so a stage stops with one line instead of
a library's traceback. They never unpickle and never run code stored in a file, and their messages
never suggest doing so (NumPy's and Keras' own errors advise ``allow_pickle`` / ``safe_mode=False``).

Every output is written to a temporary file in the destination folder and then renamed, so a
crash never leaves a half-written file that DVC could hash as a valid output. Temporaries are
named ``.tmp-<pid>-<8 hex>.<target name>[<suffix>]``: ``.dvcignore`` excludes ``.tmp-*`` from
every hash, and the first write of a process into a folder sweeps the temporaries there whose
writer is gone (a stage killed between its write and its rename). Files get the ordinary mode of
``open()`` (0666 minus the umask), and a Keras model saved with :func:`save_model` is byte-stable:
identical weights give an identical file, whenever and in whichever process it is saved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import zipfile
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TEMPORARY_PREFIX = ".tmp-"  # .dvcignore ignores this prefix; keep the two in step
_TEMPORARY = re.compile(rf"{re.escape(TEMPORARY_PREFIX)}(?P<pid>\d+)-[0-9a-f]{{8}}\..+")
# Temporaries of the old writer (tempfile.mkstemp): ``.<name>.<8 random chars><suffix of name>``.
_LEGACY_TEMPORARY = re.compile(r"\.(?P<name>.+(?P<suffix>\.[^.]+))\.[a-z0-9_]{8}(?P=suffix)")
_SWEPT_FOLDERS: set[Path] = set()  # folders this process has already swept (one scan per folder)

# A fixed zip timestamp (the earliest a zip can store) and file mode for byte-stable archives.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o644
_KERAS_METADATA = "metadata.json"
_KERAS_CONFIG = "config.json"
_UNRECORDED_DATE = "unrecorded"  # Keras' file editor reads date_saved, so it stays, with a constant


def is_temporary(path: str | os.PathLike) -> bool:
    """True if ``path`` is named like a temporary of :func:`atomic_path` (current or old naming)."""
    name = Path(path).name
    return bool(_TEMPORARY.fullmatch(name) or _LEGACY_TEMPORARY.fullmatch(name))


def _writer_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing its temporary (unknown counts as alive)."""
    if pid == os.getpid() or os.name != "posix":  # signal 0 is a probe on POSIX only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the stale temporaries directly in ``folder`` and return them (sorted).

    Stale: named like a temporary of :func:`atomic_path` and its writing process no longer runs
    (old-style temporaries carry no process id and are always stale). Nothing else is touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        match = _TEMPORARY.fullmatch(entry.name)
        stale = (match is not None and not _writer_alive(int(match["pid"]))) or bool(
            _LEGACY_TEMPORARY.fullmatch(entry.name)
        )
        if stale and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed


@contextlib.contextmanager
def _temporary(path: Path, suffix: str) -> Iterator[Path]:
    """Create an empty temporary beside ``path`` ending in ``suffix``; delete it on exit if it remains.

    Created like ``open()`` creates files (mode 0666 minus the umask), not 0600 as mkstemp does.
    """
    tail = path.name if path.name.endswith(suffix) else path.name + suffix
    while True:
        tmp = path.parent / f"{TEMPORARY_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.{tail}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary ends with the target's name (or with ``suffix`` if given and different), so
    libraries that infer the format from the file name (Keras, NumPy, Pillow) still see
    ``.keras`` / ``.npz`` / ``.jpg``. If the block raises, ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    if folder not in _SWEPT_FOLDERS:
        sweep_temporaries(folder)
        _SWEPT_FOLDERS.add(folder)
    with _temporary(path, suffix if suffix is not None else path.suffix) as tmp:
        yield tmp
        os.replace(tmp, path)


@contextlib.contextmanager
def _default_optimizer_name(model: Any) -> Iterator[None]:
    """Save the optimizer under its class's default name (``adam``), not ``adam_1``, ``adam_2``, ...

    Keras numbers unnamed optimizers per process, so the same training run in a process that has
    trained before would otherwise save a different config.json and weights file.
    """
    optimizer = getattr(model, "optimizer", None)
    name = getattr(optimizer, "name", None)
    # Keras' auto_name rule: the class name in snake case, then _1, _2, ... after the first
    default = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(optimizer).__name__)
    default = re.sub(r"([a-z])([A-Z])", r"\1_\2", default).lower()
    if not isinstance(name, str) or not re.fullmatch(rf"{re.escape(default)}_\d+", name):
        yield
        return
    optimizer.name = default
    try:
        yield
    finally:
        optimizer.name = name


_SHARED_OBJECT_ID = re.compile(rb'"shared_object_id": (\d+)')


def _number_shared_objects(config: bytes) -> bytes:
    """Keras' config.json names each shared object (e.g. the dtype policy every layer uses) by its
    Python ``id()``, a memory address that differs between processes; renumber them 1, 2, ... in order
    of first appearance, which keeps every reference to the same object pointing at one number."""
    numbers: dict[bytes, int] = {}

    def renumber(match: re.Match) -> bytes:
        number = numbers.setdefault(match.group(1), len(numbers) + 1)
        return b'"shared_object_id": %d' % number

    return _SHARED_OBJECT_ID.sub(renumber, config)


def _rewrite_zip_stably(source: Path, target: Path) -> None:
    """Copy the ``.keras`` archive ``source`` to ``target`` with nothing that depends on the save time.

    Entries keep their order, names, data and compression; their timestamps and modes become
    constants, metadata.json's ``date_saved`` becomes :data:`_UNRECORDED_DATE` and config.json's
    shared-object ids (memory addresses) are renumbered.
    """
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_DATE_TIME)
            entry.compress_type = info.compress_type
            entry.create_system = 3  # Unix, whatever the platform, so the mode bits mean the same
            entry.external_attr = (0o040755 if info.is_dir() else _ZIP_FILE_MODE) << 16
            if info.filename == _KERAS_METADATA:
                metadata = json.loads(zin.read(info))
                if "date_saved" in metadata:
                    metadata["date_saved"] = _UNRECORDED_DATE
                zout.writestr(entry, json.dumps(metadata))
                continue
            if info.filename == _KERAS_CONFIG:
                zout.writestr(entry, _number_shared_objects(zin.read(info)))
                continue
            entry.file_size = info.file_size  # lets zipfile choose ZIP64 for large weights
            with zin.open(info) as src, zout.open(entry, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Save a Keras model to ``path`` (``.keras``) atomically and byte-stably.

    The same architecture, weights and optimizer state always give the same bytes: Keras' own
    archive records its save time (metadata.json and zip entry times), memory addresses (config.json's
    shared-object ids) and a per-process optimizer name, which change the file's hash, and so rerun every downstream stage, on an identical retrain.
    The weights file inside (HDF5) stores no times, so it is kept as written.
    """
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp, _temporary(path, ".keras") as raw:
        with _default_optimizer_name(model):
            model.save(raw)
        _rewrite_zip_stably(raw, tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON; NumPy scalars and arrays are converted to Python types."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot serialise {type(o).__name__} to JSON")

    write_text(path, json.dumps(obj, indent=2, default=default, allow_nan=False) + "\n")


TIMING_KEYS = frozenset({"seconds", "seconds_random", "train_seconds", "images_per_s"})
"""Keys of wall times and speeds: they differ between two runs of the same code and data."""


def split_timings(obj: Any) -> tuple[Any, Any]:
    """(``obj`` without its :data:`TIMING_KEYS`, those keys alone with the same nesting) through dicts
    and lists; a branch with no timing in it is left out of the second (None if there are none)."""
    if isinstance(obj, dict):
        parts = {key: (None, value) if key in TIMING_KEYS else split_timings(value) for key, value in obj.items()}
        kept = {key: part[0] for key, part in parts.items() if key not in TIMING_KEYS}
        timings = {key: part[1] for key, part in parts.items() if part[1] is not None}
        return kept, timings or None
    if isinstance(obj, list):
        parts = [split_timings(value) for value in obj]
        timings = [part[1] or {} for part in parts]
        return [part[0] for part in parts], timings if any(timings) else None
    return obj, None


def write_metrics(path: str | os.PathLike, timings_path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as JSON at ``path`` without its wall times and speeds, which go to ``timings_path``
    (:func:`split_timings`), so two runs of the same code and data write the same ``path``."""
    kept, timings = split_timings(obj)
    write_json(path, kept)
    write_json(timings_path, timings or {})


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, **kwargs: Any) -> None:
    """Write a CSV with LF line endings and no index unless asked, atomically."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to an uncompressed ``.npz`` atomically (uncompressed: fast to read back)."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


# --- readers ------------------------------------------------------------------------------------

_DECODE_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)
"""What the libraries raise on a truncated, corrupt or foreign file (NumPy, zipfile, pandas, json)."""

_UNSAFE_HINTS = ("allow_pickle", "safe_mode", "pickle")
"""Words of a library's message that would point the user at unsafe loading."""


def _reason(err: BaseException) -> str:
    """A library's error as one short line, without advice to load unsafely."""
    text = " ".join(str(err).split()) or type(err).__name__
    if any(hint in text for hint in _UNSAFE_HINTS):
        return "it holds Python objects or code, which this project never writes and will not load"
    return text if len(text) <= 200 else text[:197] + "..."


def _present(path: Path, expected: str) -> None:
    """ValueError naming ``path`` unless it is a non-empty file."""
    if not path.is_file():
        raise ValueError(f"{path}: not found; expected {expected}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); expected {expected}")


def _zip_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact zip archive (.npz and .keras are zips), or None.

    Every entry's CRC is checked, so a file cut short or damaged inside is caught here rather than
    halfway through a stage.
    """
    if not zipfile.is_zipfile(path):
        return "not a zip archive (truncated, or another format)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (*_DECODE_ERRORS, RuntimeError) as err:
        return f"a damaged zip archive ({_reason(err)})"
    return None if bad is None else f"a damaged zip archive (entry {bad!r} fails its checksum)"


def read_npz(path: str | os.PathLike, expected: str, arrays: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, loaded into memory.

    ``expected`` says what the file should be (e.g. "a heatmap shard written by the heatmap_shard
    stage"); ``arrays``, if given, the exact set of array names. ValueError naming the file and that
    expectation when it is missing, empty, not an intact archive, holds Python objects (never
    unpickled), or another set of arrays.
    """
    path = Path(path)
    _present(path, expected)
    if problem := _zip_problem(path):
        raise ValueError(f"{path}: {problem}; expected {expected}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            loaded = {name: npz[name] for name in npz.files}
    except _DECODE_ERRORS as err:
        raise ValueError(f"{path}: unreadable arrays ({_reason(err)}); expected {expected}") from None
    if arrays is not None and set(loaded) != set(arrays):
        raise ValueError(f"{path}: arrays {sorted(loaded)}, expected {sorted(arrays)} ({expected})")
    return loaded


def load_model(path: str | os.PathLike, compile: bool = True, expected: str = "a Keras model written by the train stage") -> Any:
    """The Keras model in the ``.keras`` archive at ``path`` (Keras' safe mode: no stored code runs).

    ValueError naming the file when it is missing, empty, not an intact archive, or Keras cannot
    rebuild a model from it; restore it with ``dvc checkout`` / ``dvc pull`` or rerun its stage.
    """
    path = Path(path)
    what = f"{expected} (.keras); rerun its stage or restore it with dvc checkout / dvc pull"
    _present(path, what)
    if problem := _zip_problem(path):
        raise ValueError(f"{path}: {problem}; expected {what}")
    import keras  # here, not at the top: the TensorFlow-free stages import this module

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many kinds on a bad archive; all mean "unreadable"
        raise ValueError(f"{path}: Keras cannot load it ({_reason(err)}); expected {what}") from None


def read_csv(path: str | os.PathLike, expected: str, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv(path, **kwargs)``; ValueError naming the file and ``expected`` when it is
    missing, empty, not UTF-8 text or not parseable as CSV."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: not found; expected {expected}")
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{path}: not a readable CSV ({_reason(err)}); expected {expected}") from None


def read_json(path: str | os.PathLike, expected: str) -> Any:
    """The JSON document at ``path``; ValueError naming the file and ``expected`` when it is missing
    or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: not found; expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not valid JSON ({_reason(err)}); expected {expected}") from None


def setup_logging(level: int = logging.INFO) -> None:
    """One readable line per step: ``HH:MM:SS stage | message``."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s | %(message)s", datefmt="%H:%M:%S", force=True
    )
