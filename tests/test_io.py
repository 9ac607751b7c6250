"""Outputs are whole, clean and stable: atomic writes, no hashed or lingering temporaries,
ordinary file modes, byte-stable model files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from galaxy_xai import io
from galaxy_xai.models import architectures
from tests.e2e import ROOT, env

# The old writer's temporary of data/heatmaps/vgg_small.npz (tempfile.mkstemp), as found in a dvc.lock.
LEGACY_TEMPORARY = ".vgg_small.npz.ab12_x9z.npz"


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env(), capture_output=True, text=True, check=check
    )


def dir_hash(repo: Path, folder: str) -> str:
    """The md5 DVC records for ``folder`` (``dvc add``)."""
    dvc(repo, "add", "-q", folder)
    return next(
        line.split()[-1] for line in (repo / f"{folder}.dvc").read_text().splitlines() if "md5:" in line
    )


def kill_inside_atomic_write(target: Path) -> None:
    """Run a process that writes ``target`` through atomic_path and is SIGKILLed before the rename."""
    code = (
        "import os, signal, sys\n"
        "from galaxy_xai import io\n"
        "with io.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half written')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=ROOT, env=env(), check=False)
    assert proc.returncode == -signal.SIGKILL


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_killed_write_leaves_a_temporary_that_dvc_ignores_and_the_next_write_sweeps(tmp_path):
    repo = tmp_path / "repo"
    (repo / "heatmaps").mkdir(parents=True)
    dvc(repo, "init", "--no-scm", "-q")
    (repo / ".dvcignore").write_text((ROOT / ".dvcignore").read_text())
    np.savez(repo / "heatmaps" / "resnet_small.npz", maps=np.zeros(3))
    before = dir_hash(repo, "heatmaps")

    kill_inside_atomic_write(repo / "heatmaps" / "vgg_small.npz")
    leftovers = [p for p in (repo / "heatmaps").iterdir() if p.name != "resnet_small.npz"]
    assert len(leftovers) == 1 and io.is_temporary(leftovers[0]), leftovers
    assert leftovers[0].name.startswith(io.TEMPORARY_PREFIX) and leftovers[0].name.endswith(".vgg_small.npz")

    # Not part of the folder's hash, so nothing downstream reruns because of it.
    assert dvc(repo, "check-ignore", str(leftovers[0].relative_to(repo)), check=False).returncode == 0
    assert dir_hash(repo, "heatmaps") == before

    # The next write into the folder sweeps it, since its writer is gone.
    io.write_npz(repo / "heatmaps" / "vgg_small.npz", maps=np.ones(3))
    assert sorted(p.name for p in (repo / "heatmaps").iterdir()) == ["resnet_small.npz", "vgg_small.npz"]


def test_sweep_removes_stale_temporaries_only(tmp_path):
    stale = [
        LEGACY_TEMPORARY,
        ".vgg_small.keras.k2m0q_a1.keras",
        f".tmp-{dead_pid()}-0123abcd.vgg_small.npz",
    ]
    kept = [
        f".tmp-{os.getpid()}-0123abcd.resnet_small.npz",  # this process may still rename it
        f".tmp-{os.getppid()}-89abcdef.xception_small.npz",  # a running writer
        ".tmp-notes.txt",  # the prefix alone is not the pattern
        ".gitignore",
        ".env.defaults",
        ".vgg_small.npz.short.npz",
        "vgg_small.npz",
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    assert all(io.is_temporary(name) for name in stale)
    assert [name for name in kept if io.is_temporary(name)] == [kept[0], kept[1]]

    io.write_text(tmp_path / "table1.md", "| a |\n")  # the first write of this process into the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "table1.md"])
    assert io.sweep_temporaries(tmp_path / "missing") == []


def test_temporary_ends_with_the_target_name_and_suffix(tmp_path):
    with io.atomic_path(tmp_path / "vgg_small.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".vgg_small.npz") and io.is_temporary(tmp)
        np.savez(tmp, a=np.arange(3))  # NumPy would append .npz to any other name
    with io.atomic_path(tmp_path / "model", suffix=".keras") as tmp:
        assert tmp.name.endswith(".model.keras") and io.is_temporary(tmp)
        tmp.write_bytes(b"k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "vgg_small.npz"]
    np.testing.assert_array_equal(np.load(tmp_path / "vgg_small.npz")["a"], np.arange(3))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_get_ordinary_file_modes(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        io.write_bytes(tmp_path / "a.jpg", b"\xff\xd8")
        io.write_text(tmp_path / "b.md", "text\n")
        io.write_json(tmp_path / "c.json", {"a": 1})
        io.write_csv(tmp_path / "d.csv", pd.DataFrame({"a": [1]}))
        io.write_npz(tmp_path / "e.npz", a=np.arange(2))
        with io.atomic_path(tmp_path / "f.png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {
        name: oct(mode) for name in ("a.jpg", "b.md", "c.json", "d.csv", "e.npz", "f.png")
    }


@pytest.mark.parametrize("exists", [True, False])
def test_a_failing_block_leaves_the_target_untouched(tmp_path, exists):
    target = tmp_path / "metrics.json"
    if exists:
        target.write_text("old\n")
    with pytest.raises(RuntimeError, match="interrupted"):
        with io.atomic_path(target) as tmp:
            tmp.write_text("new\n")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == (["metrics.json"] if exists else [])
    if exists:
        assert target.read_text() == "old\n"


def test_a_failing_model_save_leaves_the_target_untouched(tmp_path):
    class Unsaveable:
        def save(self, path):
            Path(path).write_bytes(b"half a zip")
            raise OSError("disk full")

    target = tmp_path / "vgg_small.keras"
    target.write_bytes(b"previous model")
    with pytest.raises(OSError, match="disk full"):
        io.save_model(Unsaveable(), target)
    assert [p.name for p in tmp_path.iterdir()] == ["vgg_small.keras"]
    assert target.read_bytes() == b"previous model"


def trained_model(x: np.ndarray, y: np.ndarray) -> keras.Model:
    """The same tiny training run every call: seeded build, one Adam step on fixed data."""
    model = architectures.build_model("vgg_small", 32, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model


def test_an_identical_retrain_saves_an_identical_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    y = rng.random((4, 37), dtype=np.float32)

    first = trained_model(x, y)
    io.save_model(first, tmp_path / "first.keras")
    time.sleep(1.1)  # Keras records the save time to the second
    second = trained_model(x, y)  # in this process Keras names its optimizer adam_1, not adam
    io.save_model(second, tmp_path / "second.keras")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.keras", "second.keras"]
    assert (tmp_path / "first.keras").read_bytes() == (tmp_path / "second.keras").read_bytes()
    assert second.optimizer.name != "adam"  # the in-memory model keeps its name
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        assert [i.filename for i in archive.infolist()] == [
            "metadata.json",
            "config.json",
            "model.weights.h5",
        ]
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}

    loaded = keras.models.load_model(tmp_path / "first.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), first.predict(x, verbose=0))
    assert loaded.optimizer.name == "adam"
    # Shared objects are named by memory address, which differs between processes: renumbered.
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        ids = {int(i) for i in re.findall(rb'"shared_object_id": (\d+)', archive.read("config.json"))}
    assert ids and ids == set(range(1, len(ids) + 1))


def test_shared_object_ids_are_renumbered_consistently():
    config = b'{"a": {"shared_object_id": 140394284763344}, "b": {"shared_object_id": 77}, "c": {"shared_object_id": 140394284763344}}'
    assert io._number_shared_objects(config) == (
        b'{"a": {"shared_object_id": 1}, "b": {"shared_object_id": 2}, "c": {"shared_object_id": 1}}'
    )


# --- readers: every decode failure names the file and what was expected (issue #28) -------------------

UNSAFE_WORDS = ("allow_pickle", "safe_mode", "pickle")


def _damaged(data: bytes) -> bytes:
    """The bytes with a run in the middle overwritten: a disk or copy error inside an intact-looking zip."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


BREAKAGES = {
    "truncated": lambda data: data[: len(data) // 2],  # head -c of a longer file
    "empty": lambda data: b"",
    "random bytes": lambda data: np.random.default_rng(0).bytes(4096),
    "damaged inside": _damaged,
}


def assert_names_the_file(err: pytest.ExceptionInfo, path: Path, expected: str) -> None:
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert not any(word in message for word in UNSAFE_WORDS), message
    assert "\n" not in message


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_npz_is_an_error_naming_the_file(tmp_path, breakage):
    good = tmp_path / "good.npz"
    io.write_npz(good, maps=np.zeros((40, 64, 64), dtype=np.float16), objid=np.arange(40))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(BREAKAGES[breakage](good.read_bytes()))
    with pytest.raises(ValueError) as err:
        io.read_npz(bad, "a heatmap shard")
    assert_names_the_file(err, bad, "expected a heatmap shard")
    assert set(io.read_npz(good, "a heatmap shard", arrays={"maps", "objid"})) == {"maps", "objid"}


def test_an_npz_of_python_objects_is_refused_without_a_hint_to_unpickle(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, maps=np.array([{"a": 1}], dtype=object))  # np.save pickles object arrays
    with pytest.raises(ValueError) as err:
        io.read_npz(path, "maps")
    assert_names_the_file(err, path, "Python objects")
    with pytest.raises(ValueError, match=r"arrays \['maps'\], expected \['grey', 'maps'\]"):
        io.read_npz(_saved(tmp_path / "plain.npz", maps=np.zeros(2)), "maps", arrays={"maps", "grey"})


def _saved(path: Path, **arrays) -> Path:
    io.write_npz(path, **arrays)
    return path


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "m.keras"
    io.save_model(architectures.build_model("vgg_small", 16, seed=0), path)
    return path.read_bytes()


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_keras_file_is_an_error_naming_the_file(tmp_path, model_bytes, breakage):
    """A truncated .keras used to give Keras' 'File not found' for a file that exists."""
    bad = tmp_path / "vgg_small.keras"
    bad.write_bytes(BREAKAGES[breakage](model_bytes))
    with pytest.raises(ValueError) as err:
        io.load_model(bad, compile=False)
    assert_names_the_file(err, bad, "expected a Keras model written by the train stage (.keras)")
    with pytest.raises(ValueError, match="not found; expected a Keras model"):
        io.load_model(tmp_path / "absent.keras")
    good = tmp_path / "good.keras"
    good.write_bytes(model_bytes)
    assert io.load_model(good, compile=False).count_params() > 0


def test_a_keras_file_with_code_is_refused_without_a_hint_to_run_it(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError) as err:
        io.load_model(path)
    assert_names_the_file(err, path, "Python objects or code")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not a readable CSV"), (b"a,b\n1,2,3,4\n5\n\"", "not a readable CSV"), (b"\xff\xfe\x00bad", "not a readable CSV")],
)
def test_a_broken_csv_is_an_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        io.read_csv(path, "the bar catalogue")
    assert_names_the_file(err, path, reason)
    assert "expected the bar catalogue" in str(err.value)


def test_a_broken_json_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "gridsearch.json"
    path.write_text('{"chosen": ')
    with pytest.raises(ValueError) as err:
        io.read_json(path, "the gridsearch stage's JSON")
    assert_names_the_file(err, path, "not valid JSON")
    with pytest.raises(ValueError, match="absent.json: not found; expected x"):
        io.read_json(tmp_path / "absent.json", "x")
