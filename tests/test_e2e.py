"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo.

One module-scoped build; the tests then change one param at a time and check that exactly the
stages depending on it rerun.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.e2e import TINY_PARAMS, make_repo, read_params, repro, run, stage_names, write_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("e2e") / "repo", TINY_PARAMS)
    ran, log = repro(path)
    assert ran == set(stage_names(path)), log
    return path


def test_outputs_exist_and_pipeline_is_clean(repo):
    raw = repo / "data" / "raw"
    for name in ("training_solutions_rev1.csv", "gz2_filename_mapping.csv", "gz2sample.csv",
                 "hoyle_barlengths.csv", "truth.csv"):
        assert (raw / name).is_file(), name
    morph = pd.read_csv(repo / "data/prepared/morphology.csv")
    bars = pd.read_csv(repo / "data/prepared/bars.csv")
    assert len(morph) == TINY_PARAMS["synthetic"]["n_labelled"]
    assert set(morph["split"]) == {"train", "val", "test"}
    assert 0 < len(bars) <= TINY_PARAMS["synthetic"]["n_bars"]
    counts = json.loads((repo / "metrics/data.json").read_text())
    assert counts, "metrics/data.json is empty"
    status = run(repo, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    assert (repo / "dvc.lock").is_file()


def test_changing_a_synthetic_param_reruns_synthesize_and_prepare(repo):
    params = read_params(repo)
    params["synthetic"]["n_unlabelled"] += 1
    write_params(repo, params)
    ran, log = repro(repo, "prepare")
    assert {"synthesize", "prepare"} <= ran, log
    assert not any(s.startswith("train") for s in ran), log
    status = run(repo, "dvc", "status", "prepare")
    assert "up to date" in status.stdout, status.stdout
