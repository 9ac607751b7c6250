"""check_params' up-front estimate of a run (galaxy_xai.cost): calibrated on this machine, it warns
past limits.warn_hours, refuses past limits.max_hours unless that is null, and refuses what the
synthetic sky's counts make impossible (issue #28)."""

from __future__ import annotations

import json
import logging

import pytest

from galaxy_xai import cost
from galaxy_xai.config import ARCHITECTURES, ConfigError, config_from_dict, load_config
from stages import check_params
from tests.e2e import ROOT, TINY_PARAMS, committed_params, complete
from tests.fixtures import make_data_folder, params_file

CALIBRATION_RUN = ROOT / "records" / "default-cpu2.json"
"""The default run on this idle 2-core machine, every stage from the sky up, timed stage by stage."""


def measured_default_seconds() -> dict[str, float]:
    """Seconds per stage family of the calibration run (the heatmap_shard stages count as heatmap)."""
    stages = json.loads(CALIBRATION_RUN.read_text())["stage_seconds"]
    out: dict[str, float] = {}
    for stage, seconds in stages.items():
        family = stage.split("@")[0].removesuffix("_shard")
        if family != "check_params":  # the estimate is its output
            out[family] = out.get(family, 0.0) + seconds
    return out


def with_changes(changes: dict):
    return config_from_dict(complete(changes), source="params.yaml")


def by_stage(costs) -> dict[str, float]:
    """Seconds per stage, the train@<model> copies summed."""
    out: dict[str, float] = {}
    for c in costs:
        out[c.stage.split("@")[0]] = out.get(c.stage.split("@")[0], 0.0) + c.seconds
    return out


def test_every_architecture_has_a_cost():
    assert set(cost.ARCH_COSTS) == set(ARCHITECTURES)


NEWER_THAN_CALIBRATION = {"true_axis"}
"""Stages added after the calibration run was recorded: estimated, not yet timed there (seconds each)."""


def test_the_default_run_is_estimated_as_measured_here():
    cfg = load_config(ROOT / "params.yaml")
    estimated = by_stage(cost.estimate(cfg, cost.run_sizes(cfg)))
    measured = measured_default_seconds()
    assert set(estimated) - set(measured) == NEWER_THAN_CALIBRATION - set(measured) and set(measured) <= set(estimated)
    for stage, seconds in measured.items():
        assert seconds / 1.5 < estimated[stage] < seconds * 1.5, (stage, estimated[stage], seconds)
    total = sum(measured.values())
    assert 0.85 * total < sum(estimated[stage] for stage in measured) < 1.15 * total


def test_the_paper_scale_is_estimated_as_docs_paper_scale_md_computes_it(caplog):
    """~2,300 CPU-hours here (train 913 h and as much again for the permuted-labels twins, heatmaps of
    the models and their twins 375 h); the paper file lets it start (max_hours: null)."""
    cfg = load_config(ROOT / "configs" / "paper.yaml")
    sizes = cost.Sizes(**cost.REAL_SIZES, source="the real catalogues")
    stages = by_stage(cost.estimate(cfg, sizes))
    assert 800 * 3600 < stages["train"] < 1100 * 3600 and 300 * 3600 < stages["heatmap"] < 480 * 3600
    assert stages["twins"] == pytest.approx(stages["train"], rel=0.01)
    with caplog.at_level(logging.INFO):
        cost.check_budget(cfg, logging.getLogger("check_params"), sizes)
    assert "over limits.warn_hours = 1" in caplog.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Issue #28's settings that started hours to days of work without a word.
        ({"xai": {"bootstrap": 10_000_000}}, r"limits.max_hours = 24: the run is estimated at \d+\.\d h on 2 CPU cores "
         r"\((gridsearch|measure) [\d.]+ h: .*xai.bootstrap = 10000000"),
        ({"synthetic": {"n_labelled": 899_000}}, r"\(train@\* [\d.]+ h: models.\w+.epochs = 15 x 764150 training images, x 3 copies"),
        ({"xai": {"method": "smoothgrad", "smoothgrad": {"samples": 100_000}}},
         r"\(heatmap [\d.]+ h: 1600 maps x 3 models x 3 \(the models and their twins\) of xai.method = smoothgrad"),
        ({"explainers": {"galaxies": 100_000}}, r"explainers.galaxies = 100000: expected at most the 640 XAI test galaxies"),
        ({"heatmap": {"shards": list(range(961))}}, r"heatmap.shards: 961 shards: expected at most one per bar-catalogue galaxy"),
        ({"synthetic": {"n_labelled": 10}}, r"morphology split: the 'val' split would be empty \(10 galaxies, fraction 0.05 -> 0\)"),
    ],
)
def test_a_run_past_a_day_or_impossible_is_refused_before_any_stage(changes, message):
    with pytest.raises(ConfigError, match=message):
        cost.check_budget(with_changes(changes), logging.getLogger("check_params"))


@pytest.mark.parametrize(
    "changes",
    [{"models": {"vgg_small": {**committed_params()["models"]["vgg_small"], "epochs": 3_000}}},
     {"xai": {"smoothgrad": {"samples": 30_000}}}],  # the explainers stage's SmoothGrad-type explainers
)
def test_a_run_past_an_hour_is_started_with_a_warning(changes, caplog):
    with caplog.at_level(logging.INFO):
        costs = cost.check_budget(with_changes(changes), logging.getLogger("check_params"))
    assert 1 < sum(c.seconds for c in costs) / 3600 < 24
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "over limits.warn_hours = 1" in warning[0]


def test_max_hours_null_is_the_switch_for_a_long_run(caplog):
    cfg = with_changes({"xai": {"bootstrap": 10_000_000}, "limits": {"max_hours": None}})
    with caplog.at_level(logging.INFO):
        cost.check_budget(cfg, logging.getLogger("check_params"))
    assert "over limits.warn_hours" in caplog.text


def test_the_tests_tiny_configuration_is_minutes():
    cfg = with_changes(TINY_PARAMS)
    assert sum(c.seconds for c in cost.estimate(cfg, cost.run_sizes(cfg))) < 600


def test_real_data_sizes_are_the_rows_of_the_data_folder(tmp_path):
    data = make_data_folder(tmp_path / "raw", n_labelled=20, n_bars=9, n_coadd=2)
    cfg = with_changes({"data": {"path": str(data.path)}})
    sizes = cost.run_sizes(cfg)
    assert (sizes.labelled, sizes.bars) == (len(data.galaxy_ids), len(data.objids))
    assert str(data.path) in sizes.source
    absent = cost.run_sizes(with_changes({"data": {"path": str(tmp_path / "absent")}}))
    assert (absent.labelled, absent.unlabelled, absent.bars) == tuple(cost.REAL_SIZES.values())


def test_check_params_stops_a_run_past_a_day_with_one_line(tmp_path, capsys):
    params = params_file(tmp_path / "params.yaml", {"xai": {"bootstrap": 10_000_000}})
    with pytest.raises(SystemExit) as stop:
        check_params.main(["--params", str(params), "--out", str(tmp_path / "params.ok")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"check_params | {params}: limits.max_hours = 24: the run is estimated at" in err
    assert "set limits.max_hours: null to start it anyway" in err and not (tmp_path / "params.ok").exists()
    check_params.main(["--params", str(params_file(tmp_path / "ok.yaml", {})), "--out", str(tmp_path / "params.ok")])
    assert "estimated run (every stage from nothing" in capsys.readouterr().err
    assert (tmp_path / "params.ok").read_text() == check_params.OK_TEXT


def test_check_params_warns_when_the_control_folds_learn_from_less_than_the_papers_split(tmp_path, capsys):
    weak = params_file(tmp_path / "weak.yaml", {"control": {"folds": 2}})
    check_params.main(["--params", str(weak), "--out", str(tmp_path / "params.ok")])
    err = capsys.readouterr().err
    assert "control.folds = 2: the control model of fold 1 learns from 20% of the bar catalogue" in err
    assert "(5 folds or more give it as much)" in err and (tmp_path / "params.ok").is_file()
    check_params.main(["--params", str(params_file(tmp_path / "ok.yaml", {})), "--out", str(tmp_path / "params.ok")])
    assert "control.folds" not in capsys.readouterr().err  # the default's 5 folds: no warning
