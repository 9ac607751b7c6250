"""The data layer and the ``prepare`` stage: readers, quirks, joins, splits, and the stage's outputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_xai import units
from galaxy_xai.config import PrepareConfig
from galaxy_xai.data import catalogue as cat
from galaxy_xai.data import drops, galaxyzoo, preparation, splits
from stages import prepare as prepare_stage
from tests.fixtures import (
    FIRST_OBJID,
    REAL_LABEL_ROWS,
    DataFolder,
    make_data_folder,
    params_file,
    truncate,
    write_jpeg,
)

CFG = PrepareConfig()
SEED = 42


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> DataFolder:
    return make_data_folder(tmp_path_factory.mktemp("template") / "raw")


@pytest.fixture
def data(template, tmp_path) -> DataFolder:
    """A private copy of the fixture folder that a test may break."""
    shutil.copytree(template.path, tmp_path / "raw")
    return dataclasses.replace(template, path=tmp_path / "raw")


def run(folder: DataFolder, truth: bool = True, **changes) -> preparation.PreparedData:
    table = cat.read_truth(folder.path) if truth else None
    return preparation.prepare_data(
        folder.path, dataclasses.replace(CFG, **changes), SEED, truth=table, progress=False
    )


def edit_csv(path: Path, change) -> None:
    """Apply ``change`` to the CSV read as text (18-digit IDs stay exact) and write it back."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = change(frame)
    frame.to_csv(path, index=False)


def set_cell(path: Path, key: str, key_value, column: str, value: str) -> None:
    def change(frame):
        frame.loc[frame[key] == str(key_value), column] = value
        return frame

    edit_csv(path, change)


def real_rows() -> np.ndarray:
    return np.array([[float(v) for v in row.split(",")] for row in REAL_LABEL_ROWS.values()])


# --- the decision tree ----------------------------------------------------------------------------


def test_the_real_label_rows_pass_the_tree():
    assert np.all(cat.tree_violation(real_rows()) < 1e-3)


def test_every_answer_out_of_place_breaks_the_tree():
    # Each of the 37 answers takes part in a constraint, so moving any one by 0.01 is caught.
    base = real_rows()[0]
    perturbed = np.tile(base, (len(galaxyzoo.CLASS_COLUMNS), 1)) + 0.01 * np.eye(len(galaxyzoo.CLASS_COLUMNS))
    assert np.all(cat.tree_violation(perturbed) > 0.005)
    negative = base.copy()
    negative[galaxyzoo.CLASS_COLUMNS.index("Class8.7")] = -0.02  # the sum rule alone would also flag this
    assert cat.tree_violation(negative[None])[0] >= 0.02
    assert cat.tree_violation(base[None] + 1e-5)[0] < 1e-3  # rounding passes


# --- readers ----------------------------------------------------------------------------------------


def test_reordered_and_extra_columns_are_fine(data):
    before = cat.read_labels(data.path)
    edit_csv(data.path / cat.LABELS_CSV, lambda f: f[f.columns[::-1]].assign(Comment="x"))
    after = cat.read_labels(data.path)
    assert list(after.columns) == galaxyzoo.LABEL_COLUMNS
    pd.testing.assert_frame_equal(after, before)


def test_ids_are_parsed_exactly(data):
    hoyle = cat.read_hoyle(data.path)
    assert hoyle["objid"].dtype == np.int64
    assert hoyle["objid"].iloc[0] == FIRST_OBJID  # float64 would have rounded it
    assert set(cat.read_labels(data.path)["GalaxyID"]) == set(data.galaxy_ids)


@pytest.mark.parametrize("value", ["abc", "", "0.1.2"])
def test_a_non_numeric_label_is_an_error_naming_file_line_and_column(data, value):
    gid = data.galaxy_ids[4]
    set_cell(data.path / cat.LABELS_CSV, "GalaxyID", gid, "Class3.1", value)
    row = int(np.flatnonzero(pd.read_csv(data.path / cat.LABELS_CSV)["GalaxyID"] == gid)[0])
    with pytest.raises(cat.DataError, match=rf"{cat.LABELS_CSV}: line {row + 2} .*Class3\.1"):
        cat.read_labels(data.path)


@pytest.mark.parametrize("value", ["12.5", "abc", "1e5", ""])
def test_a_galaxy_id_that_is_not_an_integer_is_an_error(data, value):
    set_cell(data.path / cat.LABELS_CSV, "GalaxyID", data.galaxy_ids[3], "GalaxyID", value)
    with pytest.raises(cat.DataError, match=rf"{cat.LABELS_CSV}: line 5 .*GalaxyID = .*expected an integer"):
        cat.read_labels(data.path)


def test_a_bad_objid_in_the_mapping_is_an_error(data):
    set_cell(data.path / cat.GZ2_MAPPING_CSV, "asset_id", data.asset_ids[0], "objid", "5.877e17")
    with pytest.raises(cat.DataError, match=rf"{cat.GZ2_MAPPING_CSV}: line .*objid = '5.877e17'"):
        cat.read_mapping(data.path)


def test_text_in_gz2sample_is_an_error_but_an_empty_cell_is_missing(data):
    objid = data.objids[5]
    set_cell(data.path / cat.GZ2_SAMPLE_CSV, "OBJID", objid, "REDSHIFT", "")
    assert np.isnan(cat.read_gz2sample(data.path).set_index("OBJID").loc[objid, "REDSHIFT"])
    set_cell(data.path / cat.GZ2_SAMPLE_CSV, "OBJID", objid, "REDSHIFT", "high")
    with pytest.raises(cat.DataError, match=rf"{cat.GZ2_SAMPLE_CSV}: line 7 .*REDSHIFT = 'high'"):
        cat.read_gz2sample(data.path)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (cat.LABELS_CSV, "file"),
        (cat.GZ2_MAPPING_CSV, "file"),
        (cat.GZ2_SAMPLE_CSV, "file"),
        (cat.HOYLE_CSV, "file"),
        (cat.TRAIN_IMAGES, "folder"),
        (cat.GZ2_IMAGES, "folder"),
    ],
)
def test_a_missing_file_or_folder_names_it_and_shows_the_layout(data, name, kind):
    target = data.path / name
    shutil.rmtree(target) if kind == "folder" else target.unlink()
    with pytest.raises(cat.DataError) as err:
        run(data)
    assert f"{name}: required {kind} not found" in str(err.value)
    assert cat.EXPECTED_LAYOUT in str(err.value)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        (cat.LABELS_CSV, "Class3.1"),
        (cat.LABELS_CSV, "GalaxyID"),
        (cat.GZ2_MAPPING_CSV, "asset_id"),
        (cat.GZ2_SAMPLE_CSV, "PETROR90_R"),
        (cat.GZ2_SAMPLE_CSV, "REDSHIFT"),
        (cat.HOYLE_CSV, "length_scaled"),
        (cat.HOYLE_CSV, "objid"),
    ],
)
def test_a_missing_column_names_file_and_column(data, name, column):
    edit_csv(data.path / name, lambda f: f.drop(columns=column))
    with pytest.raises(cat.DataError, match=rf"{name}: missing column\(s\) {column}\b") as err:
        run(data)
    assert cat.EXPECTED_LAYOUT in str(err.value)


def test_the_unlabelled_test_images_are_optional(data):
    shutil.rmtree(data.path / "images_test_rev1")
    prepared = run(data)
    assert prepared.metrics["files"][cat.TEST_IMAGES]["jpegs"] == 0
    assert len(prepared.morphology) == len(data.galaxy_ids)


@pytest.mark.parametrize(
    ("name", "galaxy_id"),
    [
        ("images_test_rev1/images/100008.jpg", 100008),
        ("/abs/other/999999.jpg", 999999),
        ("x/1000000.jpg", 1000000),
        ("notanid.jpg", None),
        ("galaxy_1.jpg", None),
        ("12.5.jpg", None),
        ("-5.jpg", None),
        ("+5.jpg", None),
        ("0.jpg", None),
        ("0100008.jpg", None),  # a leading zero would let two files name one galaxy
        ("\u0661\u0662\u0663.jpg", None),  # Arabic-Indic digits: str.isdigit() is True, not a GalaxyID
        ("1234567890123456789.jpg", None),  # 19 digits: beyond int64
    ],
)
def test_galaxy_id_from_filename(name, galaxy_id):
    assert cat.galaxy_id_from_filename(name) == galaxy_id


def test_the_kaggle_test_folder_skips_counts_and_lists_unusable_files(data):
    folder = data.path / cat.TEST_IMAGES  # the fixture holds 900000.jpg and 900001.jpg
    write_jpeg(folder / "1000000.jpg", seed=1)  # 7 digits: sorts before 900000.jpg by name, not by id
    write_jpeg(folder / "notanid.jpg", seed=2)  # a fine JPEG whose name is not a GalaxyID
    write_jpeg(folder / "900002.jpg", seed=3)
    truncate(folder / "900002.jpg")
    write_jpeg(folder / "900003.jpg", seed=4, px=100)
    (folder / "readme.txt").write_text("not a .jpg: not looked at")

    kaggle = cat.kaggle_test_images(data.path, progress=False)
    assert kaggle.folder == folder
    assert kaggle.galaxy_ids.dtype == np.int64
    assert kaggle.galaxy_ids.tolist() == [900000, 900001, 1000000]
    assert [Path(p).name for p in kaggle.paths] == ["900000.jpg", "900001.jpg", "1000000.jpg"]
    assert list(kaggle.skipped.columns) == cat.KAGGLE_SKIPPED_COLUMNS
    assert [(Path(f).name, r) for f, r in kaggle.skipped.itertuples(index=False)] == [
        ("900002.jpg", "corrupt_image"),
        ("900003.jpg", "wrong_image_size"),
        ("notanid.jpg", "not_a_galaxy_id"),
    ]
    assert kaggle.counts == {
        "images": 6,
        "predicted": 3,
        "skipped": {
            "not_a_galaxy_id": 1,
            "missing_image": 0,
            "not_a_jpeg": 0,
            "corrupt_image": 1,
            "wrong_image_size": 1,
        },
    }
    shutil.rmtree(data.path / "images_test_rev1")
    assert cat.kaggle_test_images(data.path) is None  # the folder is optional


# --- the mapping ------------------------------------------------------------------------------------


def test_dedupe_mapping_prefers_original_then_extra_whatever_the_row_order():
    mapping = pd.DataFrame(
        {
            "objid": [1, 1, 1, 2, 2, 3, 3, 4],
            "sample": [
                "stripe82",
                "extra",
                "original",
                "stripe82_coadd_2",
                "extra",
                "stripe82_coadd_2",
                "stripe82_coadd_1",
                "stripe82",
            ],
            "asset_id": [10, 11, 12, 20, 21, 30, 31, 40],
        }
    )
    for seed in range(5):
        shuffled = mapping.sample(frac=1, random_state=seed).reset_index(drop=True)
        kept, repeated = drops.dedupe_mapping(shuffled)
        assert kept["objid"].tolist() == [1, 2, 3, 4]
        assert kept["asset_id"].tolist() == [12, 21, 31, 40]
        assert sorted(repeated["asset_id"]) == [10, 11, 20, 30]


def test_repeated_objids_in_the_file_take_the_original_image(data):
    # The fixture lists a stripe82_coadd_1 row (whose image does not exist) before each original.
    prepared = run(data)
    bars = prepared.bars.set_index("objid")
    assert set(data.coadd_objids) <= set(bars.index)
    np.testing.assert_array_equal(
        bars.loc[data.coadd_objids, "asset_id"], data.asset_ids[: len(data.coadd_objids)]
    )
    mapping_counts = prepared.metrics["files"][cat.GZ2_MAPPING_CSV]
    assert mapping_counts["duplicate_rows"] == len(data.coadd_objids)
    assert mapping_counts["duplicate_rows_by_sample"] == {"stripe82_coadd_1": len(data.coadd_objids)}
    assert (prepared.dropped["reason"] == "duplicate_mapping_row").sum() == len(data.coadd_objids)


# --- the prepared tables --------------------------------------------------------------------------


def test_a_clean_folder_keeps_every_galaxy_with_consistent_units(data):
    prepared = run(data)
    morph, bars = prepared.morphology, prepared.bars
    assert list(morph.columns) == ["GalaxyID", "image_path", *galaxyzoo.CLASS_COLUMNS, "split"]
    assert list(bars.columns) == [*preparation.BARS_COLUMNS, *preparation.TRUTH_COLUMNS.values()]
    assert len(morph) == len(data.galaxy_ids) and len(bars) == len(data.objids)
    assert set(REAL_LABEL_ROWS) <= set(morph["GalaxyID"])
    assert all(Path(p).is_file() for p in [*morph["image_path"], *bars["image_path"]])
    assert prepared.metrics["morphology"]["dropped"] == dict.fromkeys(drops.MORPHOLOGY_DROP_REASONS, 0)
    assert prepared.metrics["bars"]["dropped"] == dict.fromkeys(drops.BARS_DROP_REASONS, 0)

    np.testing.assert_allclose(bars["length_px424"], 100 * bars["length_scaled"])
    gz2 = cat.read_gz2sample(data.path).set_index("OBJID").loc[bars["objid"]]
    np.testing.assert_array_equal(bars["PETROR90_R"], gz2["PETROR90_R"])
    np.testing.assert_allclose(
        bars["length_kpc"], units.px424_to_kpc(bars["length_px424"], gz2["PETROR90_R"], gz2["REDSHIFT"])
    )
    # The fixture's Hoyle length_avg was made from the same chain, so the two kpc columns agree.
    np.testing.assert_allclose(bars["length_kpc"], bars["length_avg"], rtol=1e-9)
    truth = pd.read_csv(data.path / cat.TRUTH_CSV).query("set == 'gz2'").set_index("id").loc[bars["objid"]]
    np.testing.assert_array_equal(bars["true_length_px424"], truth["bar_length_px424"])
    for column, name in preparation.TRUTH_COLUMNS.items():
        np.testing.assert_array_equal(bars[name], truth[column])
    assert prepared.metrics["bars"]["truth_matched"] == len(bars)


def test_without_truth_there_are_no_true_columns(data):
    assert list(run(data, truth=False).bars.columns) == preparation.BARS_COLUMNS


def test_every_bar_catalogue_quirk_is_dropped_counted_and_listed(data):
    ids = data.objids
    sample, hoyle = data.path / cat.GZ2_SAMPLE_CSV, data.path / cat.HOYLE_CSV
    images = data.path / cat.GZ2_IMAGES
    expected = {
        "bad_petror90_r": [ids[3], ids[4], ids[5]],
        "bad_redshift": [ids[6], ids[7]],
        "missing_image": [ids[8]],
        "corrupt_image": [ids[9], ids[10]],
        "not_a_jpeg": [ids[11]],
        "wrong_image_size": [ids[12]],
        "not_in_gz2sample": [ids[13]],
        "no_mapping": [ids[14]],
        "duplicate_objid": [ids[15]],
        "bad_length_scaled": [ids[16]],
    }
    set_cell(sample, "OBJID", ids[3], "PETROR90_R", "")
    set_cell(sample, "OBJID", ids[4], "PETROR90_R", "-1")
    set_cell(sample, "OBJID", ids[5], "PETROR90_R", "0")
    set_cell(sample, "OBJID", ids[6], "REDSHIFT", "")
    set_cell(sample, "OBJID", ids[7], "REDSHIFT", "-0.01")
    (images / f"{data.asset_ids[8]}.jpg").unlink()
    truncate(images / f"{data.asset_ids[9]}.jpg")
    (images / f"{data.asset_ids[10]}.jpg").write_bytes(b"\xff\xd8 this is not image data" * 50)
    Image.new("RGB", (424, 424)).save(images / f"{data.asset_ids[11]}.jpg", format="PNG")
    write_jpeg(images / f"{data.asset_ids[12]}.jpg", seed=0, px=100)
    edit_csv(sample, lambda f: f[f["OBJID"] != str(ids[13])])
    edit_csv(data.path / cat.GZ2_MAPPING_CSV, lambda f: f[f["objid"] != str(ids[14])])
    edit_csv(hoyle, lambda f: pd.concat([f, f[f["objid"] == str(ids[15])].assign(length_scaled="0.9")]))  # disagrees
    set_cell(hoyle, "objid", ids[16], "length_scaled", "nan")

    prepared = run(data)
    listed = prepared.metrics["bars"]["dropped"]
    assert listed == {r: len(expected.get(r, [])) for r in drops.BARS_DROP_REASONS}
    assert prepared.metrics["dropped_ids"]["bars"] == {
        r: sorted(expected.get(r, [])) for r in drops.BARS_DROP_REASONS
    }
    gone = {i for v in expected.values() for i in v}  # ids[15]'s two rows disagree: neither is kept
    assert set(prepared.bars["objid"]) == set(ids) - gone
    assert prepared.metrics["bars"]["rows"] == len(ids) - len(gone)
    table = prepared.dropped.query("table == 'bars'")
    assert sorted(zip(table["reason"], table["id"], strict=True)) == sorted(
        (r, i) for r, v in expected.items() for i in v
    )
    assert table.loc[table["reason"] == "corrupt_image", "file"].str.endswith(".jpg").all()


def test_every_morphology_quirk_is_dropped_counted_and_listed(data):
    ids = data.galaxy_ids
    labels = data.path / cat.LABELS_CSV

    def change(frame):
        frame.loc[frame["GalaxyID"] == str(ids[0]), "Class3.1"] = "0.9"  # breaks sum(Class3) = Class2.2
        return pd.concat([frame, frame[frame["GalaxyID"] == str(ids[1])]])  # an exact repeat: kept once

    edit_csv(labels, change)
    (data.path / cat.TRAIN_IMAGES / f"{ids[2]}.jpg").unlink()
    truncate(data.path / cat.TRAIN_IMAGES / f"{ids[3]}.jpg")

    prepared = run(data)
    metrics = prepared.metrics["morphology"]
    assert metrics["rows_read"] == len(ids) + 1
    assert metrics["dropped"] == {
        "duplicate_id": 0,
        "tree_violation": 1,
        "missing_image": 1,
        "not_a_jpeg": 0,
        "corrupt_image": 1,
        "wrong_image_size": 0,
    }
    assert metrics["tree_violation"]["rows_above_tolerance"] == 1
    assert (
        metrics["tree_violation"]["max_read"] > 0.1
        and metrics["tree_violation"]["max_kept"] < CFG.tree_tolerance
    )
    dropped_ids = prepared.metrics["dropped_ids"]["morphology"]
    assert (dropped_ids["tree_violation"], dropped_ids["missing_image"], dropped_ids["corrupt_image"]) == (
        [ids[0]],
        [ids[2]],
        [ids[3]],
    )
    assert set(prepared.morphology["GalaxyID"]) == set(ids) - {ids[0], ids[2], ids[3]}
    assert set(REAL_LABEL_ROWS) <= set(prepared.morphology["GalaxyID"])
    assert metrics["rows"] == len(ids) - 3 == sum(metrics["split"].values())


def test_tree_tolerance_decides_what_is_dropped(data):
    # Real row 135453 has Class6.1 = 0.12106, Class6.2 = 0.87894: push their sum to 1.002.
    set_cell(data.path / cat.LABELS_CSV, "GalaxyID", 135453, "Class6.2", "0.88094")
    assert run(data).metrics["morphology"]["dropped"]["tree_violation"] == 1
    assert run(data, tree_tolerance=0.01).metrics["morphology"]["dropped"]["tree_violation"] == 0


def test_without_check_images_a_corrupt_jpeg_passes_but_a_missing_one_does_not(data):
    ids = data.galaxy_ids
    truncate(data.path / cat.TRAIN_IMAGES / f"{ids[5]}.jpg")
    (data.path / cat.TRAIN_IMAGES / f"{ids[6]}.jpg").unlink()
    dropped = run(data, check_images=False).metrics["dropped_ids"]["morphology"]
    assert dropped["corrupt_image"] == [] and dropped["missing_image"] == [ids[6]]
    assert run(data).metrics["dropped_ids"]["morphology"]["corrupt_image"] == [ids[5]]


def test_check_jpegs_keeps_input_order(data, tmp_path):
    good = [str(data.path / cat.TRAIN_IMAGES / f"{i}.jpg") for i in data.galaxy_ids[:6]]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no")
    paths = [good[0], str(bad), *good[1:], str(tmp_path / "absent.jpg")]
    problems = cat.check_jpegs(paths, workers=3, progress=False)
    assert problems.tolist() == ["", "corrupt_image", *[""] * 5, "missing_image"]


def test_a_bar_longer_than_the_image_is_dropped_with_a_reason(data):
    ids = data.objids
    hoyle = data.path / cat.HOYLE_CSV
    set_cell(hoyle, "objid", ids[0], "length_scaled", "4.25")  # 425 px: leaves the 424-px frame
    set_cell(hoyle, "objid", ids[1], "length_scaled", "4.24")  # 424 px: as long as the image, kept
    prepared = run(data)
    assert prepared.metrics["bars"]["dropped"]["implausible_length"] == 1
    assert prepared.metrics["dropped_ids"]["bars"]["implausible_length"] == [ids[0]]
    assert ids[0] not in set(prepared.bars["objid"]) and ids[1] in set(prepared.bars["objid"])
    row = prepared.dropped.query("reason == 'implausible_length'")
    assert row[["table", "id", "file"]].values.tolist() == [["bars", ids[0], cat.HOYLE_CSV]]
    assert row["detail"].iloc[0] == f"length_scaled = 4.25 -> length_px424 = 425 > {units.IMAGE_PX}"


@pytest.mark.parametrize("conflict_first", [False, True])
def test_conflicting_gz2sample_rows_are_dropped_whatever_the_file_order(data, conflict_first):
    ids = data.objids
    sample = data.path / cat.GZ2_SAMPLE_CSV

    def change(frame):
        row = lambda objid: frame[frame["OBJID"] == str(objid)]  # noqa: E731
        extra = [
            row(ids[2]).assign(PETROR90_R="99.5"),  # another radius
            row(ids[3]).assign(REDSHIFT="0.5"),  # another redshift
            row(ids[4]),  # an identical repeat: harmless, one row kept
        ]
        return pd.concat([*extra, frame] if conflict_first else [frame, *extra])

    radius = float(cat.read_gz2sample(data.path).set_index("OBJID").loc[ids[2], "PETROR90_R"])
    edit_csv(sample, change)
    prepared = run(data)
    dropped = prepared.dropped.query("reason == 'conflicting_gz2sample_rows'")
    assert sorted(dropped["id"]) == [ids[2], ids[3]]
    assert set(dropped["table"]) == {"bars"} and set(dropped["file"]) == {cat.GZ2_SAMPLE_CSV}
    detail = dropped.set_index("id")["detail"]
    values = [str(radius), "99.5"] if not conflict_first else ["99.5", str(radius)]
    assert detail[ids[2]].startswith(f"PETROR90_R = {values[0]} | {values[1]}; REDSHIFT = ")
    assert "REDSHIFT = " in detail[ids[3]] and "0.5" in detail[ids[3]].split("REDSHIFT = ")[1]
    assert set(prepared.bars["objid"]) == set(ids) - {ids[2], ids[3]}  # ids[4] kept
    assert prepared.metrics["bars"]["dropped"]["conflicting_gz2sample_rows"] == 2
    assert prepared.metrics["dropped_ids"]["bars"]["conflicting_gz2sample_rows"] == [ids[2], ids[3]]
    files = prepared.metrics["files"][cat.GZ2_SAMPLE_CSV]
    assert (files["duplicate_rows"], files["conflicting_objids"]) == (3, 2)


def test_a_repeated_id_keeps_an_exact_repeat_once_and_drops_a_conflict_with_both_values(data):
    """Issue #28: a repeated GalaxyID / Hoyle objid kept the first row and dropped the other with an
    empty detail, whether the rows agreed or not; gz2sample.csv already told the two apart."""
    gids, objids = data.galaxy_ids, data.objids
    labels, hoyle = data.path / cat.LABELS_CSV, data.path / cat.HOYLE_CSV
    before = run(data)

    def repeat_labels(frame):
        row = lambda gid: frame[frame["GalaxyID"] == str(gid)]  # noqa: E731
        # ids 4 and 5: exact repeats; id 6: the repeat (listed first) moves 0.1 from Class1.1 to Class1.2
        changed = row(gids[6]).assign(**{"Class1.1": str(float(row(gids[6])["Class1.1"].iloc[0]) - 0.1),
                                         "Class1.2": str(float(row(gids[6])["Class1.2"].iloc[0]) + 0.1)})
        return pd.concat([changed, frame, row(gids[4]), row(gids[5])])

    edit_csv(labels, repeat_labels)
    edit_csv(hoyle, lambda f: pd.concat([f, f[f["objid"] == str(objids[5])],
                                         f[f["objid"] == str(objids[6])].assign(length_scaled="0.4321")]))
    after = run(data)

    assert set(after.morphology["GalaxyID"]) == set(before.morphology["GalaxyID"]) - {gids[6]}
    assert set(after.bars["objid"]) == set(before.bars["objid"]) - {objids[6]}
    kept = after.morphology.set_index("GalaxyID").loc[gids[4], galaxyzoo.CLASS_COLUMNS]
    pd.testing.assert_series_equal(kept, before.morphology.set_index("GalaxyID").loc[gids[4], galaxyzoo.CLASS_COLUMNS])
    dropped = after.dropped.set_index("reason")
    label_row = dropped.loc["duplicate_id"]
    original = cat.read_labels(data.path).query("GalaxyID == @gids[6]").iloc[-1]
    assert (label_row["table"], label_row["id"], label_row["file"]) == ("morphology", gids[6], cat.LABELS_CSV)
    # Both values of each column that disagrees, in file order; the 35 that agree are not listed.
    assert label_row["detail"] == (
        f"Class1.1 = {original['Class1.1'] - 0.1} | {original['Class1.1']}; "
        f"Class1.2 = {original['Class1.2'] + 0.1} | {original['Class1.2']}"
    )
    hoyle_row = dropped.loc["duplicate_objid"]
    length = float(cat.read_hoyle(data.path).query("objid == @objids[6]")["length_scaled"].iloc[0])
    assert (hoyle_row["table"], hoyle_row["id"], hoyle_row["file"]) == ("bars", objids[6], cat.HOYLE_CSV)
    assert hoyle_row["detail"].endswith(f"length_scaled = {length} | 0.4321")
    files = after.metrics["files"]
    assert files[cat.LABELS_CSV] == {"rows": len(gids) + 3, "duplicate_rows": 3, "conflicting_galaxy_ids": 1}
    assert files[cat.HOYLE_CSV] == {"rows": len(objids) + 2, "duplicate_rows": 2, "conflicting_objids": 1}
    assert after.metrics["morphology"]["dropped"]["duplicate_id"] == 1
    assert after.metrics["dropped_ids"]["bars"]["duplicate_objid"] == [objids[6]]


def test_a_bar_longer_than_the_crop_the_models_see_is_dropped(data):
    """Issue #28: length_scaled 3.0 (300 px) was kept although the models see a 160-px crop."""
    ids = data.objids
    set_cell(data.path / cat.HOYLE_CSV, "objid", ids[0], "length_scaled", "3.0")  # 300 px: inside 424, not 160
    set_cell(data.path / cat.HOYLE_CSV, "objid", ids[1], "length_scaled", "1.6")  # 160 px: as long as the crop
    assert ids[0] in set(run(data).bars["objid"])  # no crop: the whole 424-px image
    prepared = preparation.prepare_data(data.path, CFG, SEED, progress=False, crop_px=160)
    assert prepared.metrics["dropped_ids"]["bars"]["implausible_length"] == [ids[0]]
    assert ids[1] in set(prepared.bars["objid"])
    row = prepared.dropped.query("reason == 'implausible_length'")
    assert row["detail"].iloc[0] == "length_scaled = 3 -> length_px424 = 300 > 160 (images.crop_px: the crop the models see)"


def test_every_split_must_get_a_galaxy(data):
    """A validation fraction that rounds to no galaxy stops prepare, not the train stage."""
    with pytest.raises(cat.DataError, match=r"morphology split: the 'val' split would be empty .* fraction 0.001 -> 0"):
        run(data, val_fraction=0.001)


def test_when_every_label_row_is_dropped_the_error_says_how_many_and_why(data):
    edit_csv(data.path / cat.LABELS_CSV, lambda f: f.assign(**{"Class1.1": "5"}))  # breaks every row
    with pytest.raises(cat.DataError) as err:
        run(data)
    assert str(err.value) == (
        f"morphology split: all {len(data.galaxy_ids)} label rows of {cat.LABELS_CSV} were dropped "
        f"({len(data.galaxy_ids)} tree_violation: rows breaking the Galaxy Zoo decision tree by more "
        "than prepare.tree_tolerance = 0.001); nothing left to split"
    )


def test_when_drops_leave_a_split_empty_the_error_says_how_many_and_why(data):
    ids = data.galaxy_ids
    intact = f"{ids[-2]}|{ids[-1]}"  # two label rows pass the tree; the first of them has no image
    edit_csv(
        data.path / cat.LABELS_CSV,
        lambda f: f.assign(**{"Class1.1": f["Class1.1"].where(f["GalaxyID"].str.fullmatch(intact), "5")}),
    )
    (data.path / cat.TRAIN_IMAGES / f"{ids[-2]}.jpg").unlink()
    with pytest.raises(cat.DataError) as err:
        run(data, tree_tolerance=0.002)
    n = len(ids)
    assert str(err.value).startswith("morphology split: the 'val' split would be empty (1 galaxies")
    assert str(err.value).endswith(
        f"; {n - 1} of the {n} label rows of {cat.LABELS_CSV} were dropped ({n - 2} tree_violation: rows "
        "breaking the Galaxy Zoo decision tree by more than prepare.tree_tolerance = 0.002; "
        "1 missing_image: no JPEG at the expected path)"
    )


def test_when_every_bar_is_dropped_the_error_says_how_many_and_why(data):
    ids = data.objids
    set_cell(data.path / cat.HOYLE_CSV, "objid", ids[0], "length_scaled", "5")
    for image in (data.path / cat.GZ2_IMAGES).glob("*.jpg"):
        image.unlink()
    with pytest.raises(cat.DataError) as err:
        run(data)
    n = len(ids)
    assert str(err.value) == (
        f"bar-catalogue split: all {n} rows of {cat.HOYLE_CSV} were dropped ({n - 1} missing_image: no JPEG "
        "at the expected path; 1 implausible_length: length_scaled puts the bar beyond the image the models see "
        "(length_px424 > images.crop_px, or > 424 without a crop)); nothing left to split"
    )


# --- splits -----------------------------------------------------------------------------------------


def unique_ids(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(10**12, size=n, replace=False).astype(np.int64) + FIRST_OBJID


def test_morphology_split_sizes_determinism_and_row_order_independence():
    ids = unique_ids(1000)
    split = splits.split_morphology(ids, 0.10, 0.05, seed=1)
    assert {s: int((split == s).sum()) for s in splits.MORPHOLOGY_SPLITS} == {
        "train": 850,
        "val": 50,
        "test": 100,
    }
    np.testing.assert_array_equal(split, splits.split_morphology(ids, 0.10, 0.05, seed=1))
    assert (split != splits.split_morphology(ids, 0.10, 0.05, seed=2)).any()
    order = np.random.default_rng(3).permutation(len(ids))
    np.testing.assert_array_equal(splits.split_morphology(ids[order], 0.10, 0.05, seed=1), split[order])


@pytest.mark.parametrize(
    ("n", "xai_val", "control_train", "control_val"),
    [(3150, 1 / 3, 0.64, 0.16), (30, 1 / 3, 0.64, 0.16), (11, 0.5, 0.3, 0.2), (200, 0.05, 0.05, 0.01)],
)
def test_bar_splits_have_the_fractions_and_control_test_is_inside_xai_test(
    n, xai_val, control_train, control_val
):
    ids = unique_ids(n, seed=n)
    xai, control = splits.split_bars(ids, xai_val, control_train, control_val, seed=7)
    assert (xai == "val").sum() == round(xai_val * n) and (xai == "test").sum() == n - round(xai_val * n)
    assert np.all(xai[control == "test"] == "test")
    n_control_test = (control == "test").sum()
    assert n_control_test == min(round((1 - control_train - control_val) * n), (xai == "test").sum())
    assert abs((control == "val").sum() - control_val * n) <= 1
    assert (control == "train").sum() == n - n_control_test - (control == "val").sum() > 0
    again = splits.split_bars(ids, xai_val, control_train, control_val, seed=7)
    np.testing.assert_array_equal(again[0], xai)
    np.testing.assert_array_equal(again[1], control)


def test_paper_bar_split_sizes():
    xai, control = splits.split_bars(unique_ids(3150), 1 / 3, 0.64, 0.16, seed=0)
    assert ((xai == "val").sum(), (xai == "test").sum()) == (1050, 2100)
    assert [(control == s).sum() for s in splits.CONTROL_SPLITS] == [2016, 504, 630]


def _folds(n: int, folds: int, seed: int = 7, control=(0.64, 0.16)):
    ids = unique_ids(n, seed=n)
    xai, control_split = splits.split_bars(ids, 1 / 3, *control, seed=seed)
    return ids, xai, control_split, splits.control_folds(ids, control_split, folds, seed)


@pytest.mark.parametrize(("n", "folds"), [(950, 5), (300, 5), (36, 5), (950, 2), (950, 10), (11, 3)])
def test_control_folds_cover_every_galaxy_once_balanced_and_seeded(n, folds):
    ids, xai, control, fold = _folds(n, folds)
    assert fold.shape == (n,) and set(fold.tolist()) == set(range(folds))
    # Fold 0 is the paper split's test set, inside the XAI test split.
    np.testing.assert_array_equal(fold == 0, control == "test")
    assert (xai[fold == 0] == "test").all()
    sizes = np.bincount(fold)[1:]
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(splits.control_folds(ids, control, folds, 7), fold)
    if folds > 2:  # with 2 folds, fold 1 is all the others whatever the seed
        assert (splits.control_folds(ids, control, folds, 8) != fold).any()
    order = np.random.default_rng(1).permutation(n)
    np.testing.assert_array_equal(splits.control_folds(ids[order], control[order], folds, 7), fold[order])


def test_five_folds_are_the_paper_split_and_equal_fifths():
    ids, xai, control, fold = _folds(950, 5)
    assert np.bincount(fold).tolist() == [190, 190, 190, 190, 190]
    roles = splits.fold_roles(ids, control, fold, 0, 7)
    # Fold 0's model is the paper's one model: 64/16/20 of the catalogue.
    assert [(roles == r).sum() for r in splits.FOLD_ROLES] == [608, 152, 190]
    np.testing.assert_array_equal(roles[control != "test"], control[control != "test"])
    for k in range(1, 5):
        roles = splits.fold_roles(ids, control, fold, k, 7)
        assert [(roles == r).sum() for r in splits.FOLD_ROLES] == [608, 152, 190], k


@pytest.mark.parametrize(("n", "folds"), [(950, 5), (36, 5), (300, 7), (11, 3)])
def test_no_fold_model_trains_or_stops_on_a_galaxy_it_predicts(n, folds):
    ids, _, control, fold = _folds(n, folds)
    roles = np.array([splits.fold_roles(ids, control, fold, k, 7) for k in range(folds)])
    assert roles.shape == (folds, n) and set(roles.ravel()) <= set(splits.FOLD_ROLES)
    # Each galaxy is predicted by exactly one model: the one of its own fold, which never saw it.
    np.testing.assert_array_equal((roles == "predict").sum(axis=0), np.ones(n))
    np.testing.assert_array_equal(np.argmax(roles == "predict", axis=0), fold)
    for k in range(folds):
        assert ((roles[k] == "predict") == (fold == k)).all()
        assert (roles[k] == "train").any() and (roles[k] == "val").any()
    np.testing.assert_array_equal(splits.fold_roles(ids, control, fold, 1, 7), roles[1])
    assert (splits.fold_roles(ids, control, fold, 1, 8) != roles[1]).any()


def test_control_folds_errors_name_the_param():
    ids, _, control, fold = _folds(11, 3)
    with pytest.raises(cat.DataError, match=r"control.folds = 20: needs at least 1 control test galaxy"):
        splits.control_folds(ids, control, 20, 0)
    with pytest.raises(cat.DataError, match="unknown label"):
        splits.control_folds(ids, np.where(control == "val", "vali", control), 3, 0)
    with pytest.raises(ValueError, match="fold 0 must be the control test split"):
        splits.fold_roles(ids, control, (fold + 1) % 3, 0, 0)


def test_an_empty_split_is_a_clear_error():
    with pytest.raises(cat.DataError, match=r"morphology split: the 'val' split would be empty \(5 galaxies"):
        splits.split_morphology(unique_ids(5), 0.2, 0.05, seed=0)
    with pytest.raises(cat.DataError, match="control split: the 'val' split would be empty"):
        splits.split_bars(unique_ids(3), 0.34, 0.64, 0.16, seed=0)
    # Every split is read by a later stage: a fraction of 0 is refused too (the config refuses it first).
    with pytest.raises(cat.DataError, match="morphology split: the 'test' split would be empty"):
        splits.split_morphology(unique_ids(5), 0.0, 0.2, seed=0)


def test_prepared_splits_are_deterministic_and_follow_the_seed(data):
    a, b = run(data), run(data)
    pd.testing.assert_frame_equal(a.morphology, b.morphology)
    pd.testing.assert_frame_equal(a.bars, b.bars)
    other = preparation.prepare_data(data.path, CFG, SEED + 1, progress=False)
    assert (other.morphology["split"] != a.morphology["split"]).any()


# --- the stage ----------------------------------------------------------------------------------------


def stage_args(tmp_path: Path, data_path: Path) -> list[str]:
    params = params_file(tmp_path / "params.yaml", {"data": {"path": str(data_path)}})
    return [
        "--params",
        str(params),
        "--out",
        str(tmp_path / "prepared"),
        "--metrics",
        str(tmp_path / "m" / "data.json"),
    ]


def test_the_stage_writes_tables_drops_and_metrics(data, tmp_path):
    (data.path / cat.GZ2_IMAGES / f"{data.asset_ids[20]}.jpg").unlink()
    prepare_stage.main(stage_args(tmp_path, data.path))

    morph = pd.read_csv(tmp_path / "prepared" / "morphology.csv")
    bars = pd.read_csv(tmp_path / "prepared" / "bars.csv")
    dropped = pd.read_csv(tmp_path / "prepared" / "dropped.csv")
    metrics = json.loads((tmp_path / "m" / "data.json").read_text())
    assert list(morph.columns) == ["GalaxyID", "image_path", *galaxyzoo.CLASS_COLUMNS, "split"]
    assert list(bars.columns) == [*preparation.BARS_COLUMNS, *preparation.TRUTH_COLUMNS.values()]
    assert bars["objid"].dtype == np.int64 and bars["objid"].iloc[0] == FIRST_OBJID
    assert set(bars["xai_split"]) == {"val", "test"} and set(bars["control_split"]) == {
        "train",
        "val",
        "test",
    }
    assert set(morph["split"]) == {"train", "val", "test"}
    assert metrics["morphology"]["split"] == morph["split"].value_counts().to_dict()
    assert metrics["dropped_ids"]["bars"]["missing_image"] == [data.objids[20]]
    assert data.objids[20] not in set(bars["objid"])
    assert dropped.query("table == 'bars'")[["id", "reason"]].values.tolist() == [
        [data.objids[20], "missing_image"]
    ]
    assert not list((tmp_path / "prepared").glob(".*"))  # no temporary files left behind


def test_the_stage_exits_2_naming_a_missing_file(data, tmp_path, capsys):
    (data.path / cat.HOYLE_CSV).unlink()
    with pytest.raises(SystemExit) as exit_info:
        prepare_stage.main(stage_args(tmp_path, data.path))
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err  # the stage's logging replaces pytest's handlers: read the stream
    assert f"{cat.HOYLE_CSV}: required file not found" in stderr and cat.EXPECTED_LAYOUT in stderr
    assert not (tmp_path / "prepared").exists()


@pytest.mark.parametrize(("folds", "fold_share"), [(2, 0.2), (3, 0.6), (5, 0.8), (9, 0.9)])
def test_the_share_a_fold_model_learns_from_is_known_and_five_folds_match_the_paper_split(folds, fold_share):
    share, paper, enough = splits.fold_learning_share(0.64, 0.16, folds)
    assert share == pytest.approx(fold_share) and paper == pytest.approx(0.8) and enough == 5
    assert splits.fold_learning_share(0.4, 0.1, 2)[0] == pytest.approx(0.5) and splits.fold_learning_share(0.4, 0.1, 2)[2] == 2
    with pytest.raises(ValueError, match="control.folds = 1"):
        splits.fold_learning_share(0.64, 0.16, 1)
