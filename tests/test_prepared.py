"""The prepared tables' one reader/writer: round trip and bad input named by file and objid."""

import pandas as pd
import pytest

from galaxy_xai import prepared


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
        prepared.xai_rows(bars, "val")
    assert prepared.xai_rows(bars, "test")["objid"].tolist() == [3]
    with pytest.raises(ValueError, match="missing columns"):
        prepared.xai_rows(bars.drop(columns="REDSHIFT"), "test")


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
    prepared.write_prepared(tmp_path, morphology, bars, pd.DataFrame({"objid": [], "reason": []}))
    path = tmp_path / prepared.BARS_CSV
    assert prepared.read_bars(path).equals(bars)
    assert prepared.read_bars(path, "test")["objid"].tolist() == [2, 3]
    assert prepared.read_table(tmp_path / prepared.MORPHOLOGY_CSV, ["GalaxyID"]).equals(morphology)
    with pytest.raises(ValueError, match="not found"):
        prepared.read_bars(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"bars\.csv: missing column\(s\) control_split"):
        prepared.read_bars(path, columns=["objid", "control_split"])
    bars.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValueError, match="no rows"):
        prepared.read_bars(path)
