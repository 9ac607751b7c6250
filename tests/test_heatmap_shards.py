"""Heatmaps in shards (``heatmap.shards``): the split of the bar catalogue, the merge, the stages.

The merge must give exactly the file one unsharded ``heatmap_shard`` run writes: the split is
checked for coverage and balance, the merge against a known answer and bad shards, and the real
stages on the tiny data folder of :mod:`tests.fixtures` (2 shards + merge vs one run).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from galaxy_xai.config import MODEL_KINDS
from galaxy_xai.xai import heatmaps
from stages import heatmap as merge_stage
from stages import heatmap_shard as heatmap_stage
from stages import prepare as prepare_stage
from tests.fixtures import ROOT, make_data_folder, params_file
from tests.tiny_models import tiny_cnn
from tools.deps import expanded_stages

SEED = 7


# --- the split ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_rows", [1, 2, 7, 10, 31, 64])
def test_shards_cover_every_row_once_in_order_and_are_balanced(n_rows):
    for n_shards in range(1, n_rows + 1):
        blocks = [heatmaps.shard_rows(n_rows, i, n_shards) for i in range(n_shards)]
        np.testing.assert_array_equal(np.concatenate(blocks), np.arange(n_rows))
        sizes = [len(b) for b in blocks]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1, (n_rows, n_shards, sizes)
        assert all(b.dtype == np.int64 for b in blocks)


def test_shards_are_contiguous_blocks_larger_first():
    # A known answer: the split depends only on (rows, shard, shards), so every machine agrees on it.
    blocks = [heatmaps.shard_rows(10, i, 3).tolist() for i in range(3)]
    assert blocks == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert heatmaps.shard_rows(5, 0, 1).tolist() == [0, 1, 2, 3, 4]


def test_bad_shards_are_named():
    with pytest.raises(ValueError, match=r"shard 2 of 2: expected 0 <= shard < n_shards"):
        heatmaps.shard_rows(10, 2, 2)
    with pytest.raises(ValueError, match=r"shard -1 of 2"):
        heatmaps.shard_rows(10, -1, 2)
    with pytest.raises(ValueError, match=r"heatmap.shards: 4 shards of a bar catalogue of 3 galaxies"):
        heatmaps.shard_rows(3, 0, 4)


# --- the merge ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyedNoise:
    """A stand-in explainer: each map is a function of (seed, the galaxy's key) only, as SmoothGrad's is."""

    name: str = "keyed"
    attribution: str = "noise"
    stochastic: bool = True

    def __call__(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        height, width = images.shape[1:3]
        return np.stack([np.random.default_rng([seed, int(k)]).random((height, width)) for k in keys]).astype("f4")


OBJIDS = 587722981747982465 + 1000 * np.arange(11, dtype=np.int64)
SPLITS = np.array(["val", "test", "test", "val", "test", "test", "val", "test", "val", "test", "test"])
IMAGES = np.random.default_rng(0).random((11, 6, 5, 3)).astype("f4")


def maps_of(rows: np.ndarray, explainer=KeyedNoise(), model: str = "m") -> dict[str, np.ndarray]:
    return heatmaps.heatmap_set(explainer, None, model, IMAGES[rows], OBJIDS[rows], SPLITS[rows], SEED)


def shard_files(tmp_path, n_shards: int, change=None) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Shards 0..n-1 written and read back; ``change(i, arrays)`` may spoil shard i's arrays first."""
    shards = []
    for i in range(n_shards):
        arrays = maps_of(heatmaps.shard_rows(len(OBJIDS), i, n_shards))
        if change is not None:
            arrays = change(i, arrays)
        path = tmp_path / f"{i}.npz"
        heatmaps.write_heatmap_shard(path, arrays, i, n_shards)
        shards.append((str(path), heatmaps.read_heatmap_shard(path)))
    return shards


@pytest.mark.parametrize("n_shards", [1, 2, 3, 11])
def test_merged_shards_are_the_unsharded_arrays(tmp_path, n_shards):
    whole = maps_of(np.arange(len(OBJIDS)))
    merged = heatmaps.merge_shards(shard_files(tmp_path, n_shards), OBJIDS, SPLITS)
    assert list(merged) == list(heatmaps.ARRAYS)
    for key in heatmaps.ARRAYS:
        assert merged[key].dtype == whole[key].dtype, key
        np.testing.assert_array_equal(merged[key], whole[key], err_msg=key)
    # The layout: every galaxy at draw 0 in catalogue order, then the test galaxies at draw 1.
    test = SPLITS == "test"
    np.testing.assert_array_equal(merged["objid"], np.concatenate([OBJIDS, OBJIDS[test]]))


def test_a_missing_shard_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / '1.npz'}: heatmap shard not found")):
        heatmaps.read_heatmap_shard(tmp_path / "1.npz")
    heatmaps.write_heatmaps(tmp_path / "plain.npz", maps_of(np.arange(3)))
    with pytest.raises(ValueError, match=r"plain.npz: arrays .* expected .*'shard', 'shards'"):
        heatmaps.read_heatmap_shard(tmp_path / "plain.npz")


def test_too_few_shards_leave_galaxies_missing(tmp_path):
    shards = shard_files(tmp_path, 3)
    with pytest.raises(ValueError, match=r"0.npz: shard 0 of 3, expected shard 0 of 2"):
        heatmaps.merge_shards(shards[:2], OBJIDS, SPLITS)


def test_a_galaxy_in_two_shards_is_named(tmp_path):
    def steal_first_row_of_shard_0(i, arrays):
        if i != 1:
            return arrays
        return maps_of(np.r_[0, heatmaps.shard_rows(len(OBJIDS), 1, 2)])

    with pytest.raises(ValueError, match=rf"1.npz: not shard 1 of 2 .*rows 6-10.*unexpected objid \[{OBJIDS[0]}\]"):
        heatmaps.merge_shards(shard_files(tmp_path, 2, steal_first_row_of_shard_0), OBJIDS, SPLITS)


def test_a_repeated_or_missing_galaxy_is_named(tmp_path):
    def repeat_a_row(i, arrays):
        return {k: np.concatenate([v, v[:1]]) if k in heatmaps.ROW_ARRAYS else v for k, v in arrays.items()}

    with pytest.raises(ValueError, match=rf"0.npz: .*wrong number of draws \(val 1, test 2\) of objid \[{OBJIDS[0]}\]"):
        heatmaps.merge_shards(shard_files(tmp_path, 2, repeat_a_row), OBJIDS, SPLITS)

    def drop_galaxy_1(i, arrays):
        keep = arrays["objid"] != OBJIDS[1]
        return {k: v[keep] if k in heatmaps.ROW_ARRAYS else v for k, v in arrays.items()}

    with pytest.raises(ValueError, match=rf"0.npz: not shard 0 of 2 .*: 8 rows, expected 10 .*missing objid \[{OBJIDS[1]}\]"):
        heatmaps.merge_shards(shard_files(tmp_path, 2, drop_galaxy_1), OBJIDS, SPLITS)


def test_rows_out_of_order_or_with_the_wrong_split_are_named(tmp_path):
    def swap_first_two(i, arrays):
        order = np.r_[1, 0, 2 : len(arrays["objid"])]
        return {k: v[order] if k in heatmaps.ROW_ARRAYS else v for k, v in arrays.items()}

    with pytest.raises(ValueError, match=r"0.npz: .*other order"):
        heatmaps.merge_shards(shard_files(tmp_path, 2, swap_first_two), OBJIDS, SPLITS)
    other = SPLITS.copy()
    other[0] = "test"
    with pytest.raises(ValueError, match=rf"0.npz: .*wrong number of draws .* of objid \[{OBJIDS[0]}\]"):  # no second draw
        heatmaps.merge_shards(shard_files(tmp_path, 2), OBJIDS, other)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "method": np.array("vanilla")}, r"1.npz: method 'vanilla', but .*0.npz has 'keyed'"),
        (lambda a: {**a, "attribution": np.array("abs")}, r"1.npz: attribution 'abs', but .*0.npz has 'noise'"),
        (lambda a: {**a, "model": np.array("other")}, r"1.npz: model 'other', but .*0.npz has 'm'"),
        (lambda a: {**a, "maps": a["maps"][:, :-1]}, r"1.npz: maps of shape \(5, 5\), but .*0.npz has \(6, 5\)"),
    ],
)
def test_shards_that_disagree_with_shard_0_are_named(tmp_path, change, message):
    shards = shard_files(tmp_path, 2, lambda i, a: change(a) if i == 1 else a)
    with pytest.raises(ValueError, match=message):
        heatmaps.merge_shards(shards, OBJIDS, SPLITS)


# --- the stages on the tiny data folder ----------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The fixture's data folder prepared into bars.csv (9 galaxies), a tiny CNN and params files
    for 1 and 2 shards (SmoothGrad N = 4 in batches of 8 copies, 2 galaxies: shard 1 starts at row 5,
    so its gradient batches pair other galaxies than one run's)."""
    root = tmp_path_factory.mktemp("shards")
    data = make_data_folder(root / "raw", n_labelled=20, n_bars=9, n_coadd=2)
    change = {
        "data": {"path": str(data.path)},
        "images": {"crop_px": 212, "size_px": 24},
        "xai": {"smoothgrad": {"samples": 4, "noise": 0.2, "batch_size": 8}},
    }
    params = {n: params_file(root / f"params{n}.yaml", {**change, "heatmap": {"shards": list(range(n))}}) for n in (1, 2)}
    prepare_stage.main(["--params", str(params[1]), "--out", str(root / "prepared"), "--metrics", str(root / "data.json")])
    bars = pd.read_csv(root / "prepared" / "bars.csv")
    assert len(bars) == 9 and set(bars["xai_split"]) == {"val", "test"}
    tiny_cnn(px=24, seed=1).save(root / "tiny.keras")
    return root, params


def run_heatmap(root, params, out, shard=None):
    argv = ["--model", "tiny", "--model-file", str(root / "tiny.keras"), "--bars", str(root / "prepared" / "bars.csv"),
            "--out", str(out), "--params", str(params)]  # fmt: skip
    heatmap_stage.main(argv + ([] if shard is None else ["--shard", str(shard)]))


def run_merge(root, params, shards, out):
    merge_stage.main(["--model", "tiny", "--shards", str(shards), "--bars", str(root / "prepared" / "bars.csv"),
                      "--out", str(out), "--params", str(params)])  # fmt: skip


def load(path):
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def assert_same_heatmaps(merged, whole):
    assert list(merged) == list(whole) == list(heatmaps.ARRAYS)
    for key in heatmaps.ARRAYS:
        assert merged[key].dtype == whole[key].dtype and merged[key].shape == whole[key].shape, key
        if key != "maps":
            np.testing.assert_array_equal(merged[key], whole[key], err_msg=key)
    # Other galaxies in a gradient batch may change the summation order: at most one float16 step.
    ulp = np.spacing(np.maximum(np.abs(merged["maps"]), np.abs(whole["maps"])))
    gap = np.abs(merged["maps"].astype("f4") - whole["maps"].astype("f4"))
    assert (gap <= ulp).all(), f"{(gap > ulp).sum()} pixels differ by more than one float16 step"


def test_two_shards_merged_give_the_maps_of_one_run(project, capsys):
    root, params = project
    run_heatmap(root, params[1], root / "whole.npz")
    whole = load(root / "whole.npz")
    assert len(whole["maps"]) > 9 and str(whole["model"]) == "tiny"
    # The default pipeline: one shard, then the merge.
    run_heatmap(root, params[1], root / "one" / "0.npz", shard=0)
    run_merge(root, params[1], root / "one", root / "one.npz")
    assert_same_heatmaps(load(root / "one.npz"), whole)
    # Two shards (another machine could compute the second), then the merge.
    for i in (0, 1):
        run_heatmap(root, params[2], root / "two" / f"{i}.npz", shard=i)
    assert load(root / "two" / "1.npz")["objid"][0] == pd.read_csv(root / "prepared" / "bars.csv")["objid"][5]
    run_merge(root, params[2], root / "two", root / "two.npz")
    assert_same_heatmaps(load(root / "two.npz"), whole)
    # A shard left by a run with more shards is ignored, with a warning.
    shutil.copy(root / "two" / "1.npz", root / "one" / "1.npz")
    capsys.readouterr()
    run_merge(root, params[1], root / "one", root / "one.npz")
    assert "ignoring ['1.npz'] (not among the 1 shards of heatmap.shards)" in capsys.readouterr().err
    assert_same_heatmaps(load(root / "one.npz"), whole)


def test_the_merge_stage_names_a_missing_or_stale_shard(project, capsys):
    root, params = project
    (root / "partial").mkdir()
    run_heatmap(root, params[1], root / "partial" / "0.npz", shard=0)  # written under 1 shard
    with pytest.raises(SystemExit) as exit_info:
        run_merge(root, params[2], root / "partial", root / "partial.npz")
    assert exit_info.value.code == 2
    assert f"{root / 'partial' / '1.npz'}: heatmap shard not found" in capsys.readouterr().err
    shutil.copy(root / "partial" / "0.npz", root / "partial" / "1.npz")
    with pytest.raises(SystemExit):
        run_merge(root, params[2], root / "partial", root / "partial.npz")
    assert "0.npz: shard 0 of 1, expected shard 0 of 2" in capsys.readouterr().err
    assert not (root / "partial.npz").exists()


SHARD_BREAKAGES = {
    "truncated": (lambda data: data[: len(data) // 2], "not a zip archive (truncated, or another format)"),
    "zero bytes": (lambda data: b"", "empty file (0 bytes)"),
    "random bytes": (lambda data: np.random.default_rng(0).bytes(len(data)), "not a zip archive"),
}


@pytest.mark.parametrize("breakage", sorted(SHARD_BREAKAGES))
def test_the_merge_stage_names_an_unreadable_shard(project, capsys, breakage):
    """A truncated shard gave BadZipFile, a zero-byte one EOFError, random bytes advice to unpickle."""
    root, params = project
    folder = root / f"broken-{breakage.replace(' ', '-')}"
    run_heatmap(root, params[1], folder / "0.npz", shard=0)
    change, reason = SHARD_BREAKAGES[breakage]
    (folder / "0.npz").write_bytes(change((folder / "0.npz").read_bytes()))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_merge(root, params[1], folder, root / "merged.npz")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"heatmap | {folder / '0.npz'}: {reason}" in err, err
    assert "expected a heatmap shard (.npz) written by the heatmap_shard stage" in err
    assert "allow_pickle" not in err and "Traceback" not in err
    assert not (root / "merged.npz").exists()


def test_the_merge_stage_names_the_galaxy_of_a_nan_map(project, capsys):
    root, params = project
    folder = root / "nan"
    run_heatmap(root, params[1], folder / "0.npz", shard=0)
    arrays = load(folder / "0.npz")
    arrays["maps"][2, 5, 5] = np.inf
    np.savez(folder / "0.npz", **arrays)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_merge(root, params[1], folder, root / "merged.npz")
    objid = int(arrays["objid"][2])
    assert (f"{folder / '0.npz'}: 1 maps with NaN or infinite values, first objid {objid} (split "
            in capsys.readouterr().err)


def test_the_shard_stage_names_a_truncated_model_file(project, tmp_path, capsys):
    root, params = project
    model_file = tmp_path / "tiny.keras"
    model_file.write_bytes((root / "tiny.keras").read_bytes()[:5000])
    argv = ["--model", "tiny", "--model-file", str(model_file), "--bars", str(root / "prepared" / "bars.csv"),
            "--out", str(tmp_path / "out.npz"), "--params", str(params[1])]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        heatmap_stage.main(argv)
    assert exit_info.value.code == 2
    assert f"{model_file}: not a zip archive (truncated, or another format)" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def test_the_shard_stage_rejects_a_shard_outside_the_params(project, capsys):
    root, params = project
    with pytest.raises(SystemExit) as exit_info:
        run_heatmap(root, params[2], root / "bad.npz", shard=2)
    assert exit_info.value.code == 2 and "shard 2 of 2: expected 0 <= shard < n_shards" in capsys.readouterr().err
    assert not (root / "bad.npz").exists()


# --- the pipeline ---------------------------------------------------------------------------------------


def sharded_pipeline(tmp_path, shards: list[int]):
    """dvc.yaml and params.yaml of the repository with ``heatmap.shards`` = ``shards``, in ``tmp_path``."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["heatmap"]["shards"] = shards
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def test_each_model_has_one_stage_per_shard_and_the_merge_reads_only_the_shard_count(tmp_path):
    params = sharded_pipeline(tmp_path, [0, 1, 2])
    stages = expanded_stages(tmp_path)
    models = list(params["models"])
    shard_stages = {name for name in stages if name.startswith("heatmap_shard@")}
    assert shard_stages == {f"heatmap_shard@{m}-{k}-{i}" for m in models for k in MODEL_KINDS for i in range(3)}
    for model, kind in itertools.product(models, MODEL_KINDS):
        merge = stages[f"heatmap@{model}-{kind}"]
        assert merge["params"] == ["heatmap.shards"] and merge["outs"] == [f"data/heatmaps/{kind}/{model}.npz"]
        assert f"data/heatmap_shards/{kind}/{model}" in merge["deps"]
        for i in range(3):
            shard = stages[f"heatmap_shard@{model}-{kind}-{i}"]
            assert "heatmap.shards" in shard["params"] and f"models/{kind}/{model}.keras" in shard["deps"]
            assert shard["outs"] == [f"data/heatmap_shards/{kind}/{model}/{i}.npz"]
            assert f"--shard {i} " in shard["cmd"] and f"--model {model} " in shard["cmd"]
    # Downstream stages read the merged files only.
    for name, stage in stages.items():
        if not name.startswith(("heatmap_shard@", "heatmap@")):
            assert not any(str(d).startswith("data/heatmap_shards") for d in stage.get("deps", [])), name


def test_dvc_links_each_models_shards_to_its_merge_only(tmp_path):
    # DVC itself builds the graph: a merge depends on its model's shard folder, which holds the shards' outs.
    params = sharded_pipeline(tmp_path, [0, 1])
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    proc = subprocess.run([dvc, "dag", "--dot"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', proc.stdout))
    for model, kind in itertools.product(params["models"], MODEL_KINDS):
        into_merge = {a for a, b in edges if b == f"heatmap@{model}-{kind}"}
        assert into_merge == {f"heatmap_shard@{model}-{kind}-0", f"heatmap_shard@{model}-{kind}-1", "prepare", "check_params"}
        assert (f"heatmap@{model}-{kind}", "gridsearch") in edges
