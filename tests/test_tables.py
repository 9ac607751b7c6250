"""The prepared tables' one reader/writer: round trip and bad input named by file and objid."""

import pandas as pd
import pytest

from galaxy_xai.data import tables


def test_xai_rows_rejects_bad_rows():
    bars = pd.DataFrame(
        {
            "objid": [1, 2, 3],
            "length_px424": [10.0, -1.0, 5.0],
            "length_kpc": [1.0, 2.0, 3.0],
            "PETROR90_R": [5.0, 5.0, 5.0],
            "REDSHIFT": [0.05] * 3,
            "xai_split": ["val", "val", "test"],
        }
    )
    with pytest.raises(ValueError, match="objid 2: length_px424"):
        tables.xai_rows(bars, "val")
    assert tables.xai_rows(bars, "test")["objid"].tolist() == [3]
    with pytest.raises(ValueError, match="missing columns"):
        tables.xai_rows(bars.drop(columns="REDSHIFT"), "test")


def test_read_bars_round_trip_and_errors(tmp_path):
    bars = pd.DataFrame(
        {
            "objid": [1, 2, 3],
            "image_path": ["a.jpg", "b.jpg", "c.jpg"],
            "length_px424": [10.0, 20.0, 5.0],
            "length_kpc": [1.0, 2.0, 3.0],
            "PETROR90_R": [5.0, 5.0, 5.0],
            "REDSHIFT": [0.05] * 3,
            "xai_split": ["val", "test", "test"],
        }
    )
    morphology = pd.DataFrame({"GalaxyID": [7], "image_path": ["x.jpg"], "split": ["train"]})
    tables.write_prepared(tmp_path, morphology, bars, pd.DataFrame({"objid": [], "reason": []}))
    path = tmp_path / tables.BARS_CSV
    assert tables.read_bars(path).equals(bars)
    assert tables.read_bars(path, "test")["objid"].tolist() == [2, 3]
    assert tables.read_table(tmp_path / tables.MORPHOLOGY_CSV, ["GalaxyID"]).equals(morphology)
    with pytest.raises(ValueError, match="not found"):
        tables.read_bars(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"bars\.csv: missing column\(s\) control_split"):
        tables.read_bars(path, columns=["objid", "control_split"])
    bars.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValueError, match="no rows"):
        tables.read_bars(path)
