"""Experiment records (tools/record_experiment.py) and the tables of runs generated from them
(galaxy_xai/results/runs.py, tools/run_tables.py), on synthetic records in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_xai.results import runs
from galaxy_xai.results.headline import write_headline
from tools import record_experiment as rec
from tools import run_tables as rt

HEADLINE = {
    "choice": {"value": "mean_length algorithm1"},
    "choice_validation_best": {"value": "resnet_small algorithm1"},
    "morphology_rmse": {"value": 0.10676, "n": 200},
    "rotation_spread": {"value": 0.0446, "n": 40, "target": 0.08},
    "spearman_truth": {"value": 0.6126, "value_95lo": 0.5583, "value_95up": 0.6654, "n": 640},
    "vs_control_cnn": {"value": 0.58, "gain": 0.0298, "gain_95lo": -0.0314, "gain_95up": 0.092, "gain_verdict": "ties"},
    "vs_image": {"value": 0.55, "gain": 0.061, "gain_95lo": 0.0037, "gain_95up": 0.122, "gain_verdict": "beats"},
    "vs_isophote": {"value": 0.52, "gain": 0.093, "gain_95lo": 0.047, "gain_95up": 0.179, "gain_verdict": "beats"},
}  # fmt: skip


def a_record(name: str, changed: dict | None = None, **headline_changes) -> dict:
    headline = {row: dict(fields) for row, fields in HEADLINE.items()}
    for row, fields in headline_changes.items():
        headline[row] = fields
    return rec.record(name, "dvc exp run", headline, changed or {}, "0" * 40, [], {"cpu": "x", "cores": 2}, 600.0,
                      "ran", "2026-01-01T00:00:00Z")  # fmt: skip


def write_records(folder: Path, *records: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{r['name']}.json").write_text(json.dumps(r))


# --- the record -------------------------------------------------------------------------------------------
def test_params_changed_lists_every_difference_and_rerun_recreates_it():
    default = {"seed": 42, "train": {"seed": 42, "lr_patience": 5}, "xai": {"grid": {"t_c": [0.7, 0.8]}}}
    workspace = {"seed": 42, "train": {"seed": 1, "lr_patience": 5}, "xai": {"grid": {"t_c": [0.9]}}, "new": None}
    changed = rec.params_changed(default, workspace)
    assert changed == {"new": {"default": None, "value": None}, "train.seed": {"default": 42, "value": 1},
                       "xai.grid.t_c": {"default": [0.7, 0.8], "value": [0.9]}}  # fmt: skip
    assert rec.rerun_command({k: changed[k] for k in ("train.seed", "xai.grid.t_c")}) == (
        "dvc exp run -S 'train.seed=1' -S 'xai.grid.t_c=[0.9]'"
    )
    assert rec.params_changed(default, default) == {} and rec.rerun_command({}) == "dvc exp run"


def test_cpu_flags_name_the_vector_extensions_that_change_the_numbers():
    assert rec.cpu_flags("model name\t: X\nflags\t\t: fpu sse avx2 fma avx512f avx512bw\n") == ["avx2", "fma", "avx512f"]
    assert rec.cpu_flags("flags\t: fpu avx2\n") == ["avx2"] and rec.cpu_flags("") == []


def test_cpu_model_from_cpuinfo():
    assert rec.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags: x\n") == "AMD EPYC 7B13"
    assert rec.cpu_model("Hardware\t: BCM2835\n") == "BCM2835" and rec.cpu_model("") is None
    host = rec.machine()
    assert host["cores"] >= 1 and host["cpu"]


def test_a_record_needs_a_headline():
    with pytest.raises(ValueError, match="metrics/headline/ is empty"):
        rec.record("x", "dvc repro", {}, {}, "0" * 40, [], {}, None, "workspace", "now")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True)


def test_workspace_record_after_an_experiment(tmp_path):
    """What `dvc exp run -S train.seed=1` leaves in the workspace: params.yaml changed, the headline written."""
    git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("seed: 42\ntrain:\n  seed: 42\n")
    (tmp_path / "galaxy_xai").mkdir()
    (tmp_path / "galaxy_xai" / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    (tmp_path / "params.yaml").write_text("seed: 42\ntrain:\n  seed: 1\n")
    write_headline(tmp_path / "metrics" / "headline", HEADLINE)
    record = rec.workspace_record("seed-1", "", "HEAD", 12.34, "ran", root=tmp_path)
    assert record["params_changed"] == {"train.seed": {"default": 42, "value": 1}}
    assert record["rerun"] == "dvc exp run -S 'train.seed=1'" and record["wall_seconds"] == 12.3
    assert len(record["commit"]) == 40 and record["code_changes"] == [] and record["headline"] == HEADLINE
    assert record["machine"]["cores"] >= 1
    (tmp_path / "galaxy_xai" / "code.py").write_text("x = 2\n")
    elsewhere = rec.workspace_record("s", "", "HEAD", None, "workspace", root=tmp_path, here=False)
    assert elsewhere["code_changes"] == ["galaxy_xai/code.py"] and elsewhere["machine"] is None


def test_the_wrapper_runs_times_and_records_what_the_command_left(tmp_path, monkeypatch):
    test_workspace_record_after_an_experiment(tmp_path)
    (tmp_path / "galaxy_xai" / "code.py").write_text("x = 1\n")
    monkeypatch.setattr(rec, "ROOT", tmp_path)
    monkeypatch.setattr(rec, "RECORDS", tmp_path / "records")
    change = "import pathlib; pathlib.Path('params.yaml').write_text('seed: 7\\ntrain:\\n  seed: 42\\n')"
    assert rec.main(["sky-7", "--", sys.executable, "-c", change]) == 0
    record = json.loads((tmp_path / "records" / "sky-7.json").read_text())
    assert record["params_changed"] == {"seed": {"default": 42, "value": 7}} and record["source"] == "ran"
    assert record["command"].endswith(change) and record["wall_seconds"] >= 0
    with pytest.raises(SystemExit):  # no silent overwrite
        rec.main(["sky-7", "--from-workspace"])


def test_a_failing_command_records_nothing():
    status = rec.main(["test-failing-run", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert status == 3 and not (rec.RECORDS / "test-failing-run.json").exists()


LOG = """\
Running stage 'check_params':
> python -m stages.check_params --out data/params.ok
08:49:34 check_params | params.yaml: valid; wrote data/params.ok
Stage 'synthesize' didn't change, skipping
Running stage 'train@vgg_small':
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
08:50:59 train | training vgg_small (vgg_small, up to 15 epochs)
08:52:53 train | wrote models/morphology/vgg_small.keras
Running stage 'quiet':
Running stage 'figure':
23:59:58 figure | writing
00:00:40 figure | wrote metrics/headline/
"""


def test_stage_seconds_run_from_each_stages_first_line_to_the_next_ones():
    seconds = rec.stage_seconds(LOG)
    # skipped and silent stages have no entry; the last one ends at its last line, past midnight
    assert seconds == {"check_params": 85.0, "train@vgg_small": 15 * 3600 + 8 * 60 + 59, "figure": 42.0}
    assert rec.stage_seconds("no stage ran\n") == {}


def test_the_wrapper_keeps_the_commands_stage_seconds(tmp_path, monkeypatch, capsys):
    test_workspace_record_after_an_experiment(tmp_path)
    monkeypatch.setattr(rec, "ROOT", tmp_path)
    monkeypatch.setattr(rec, "RECORDS", tmp_path / "records")
    assert rec.main(["logged", "--", sys.executable, "-c", f"print({LOG!r})"]) == 0
    assert "08:50:59 train | training" in capsys.readouterr().out  # passed through to the terminal
    record = json.loads((tmp_path / "records" / "logged.json").read_text())
    assert record["stage_seconds"] == rec.stage_seconds(LOG)
    (tmp_path / "run.log").write_text(LOG)
    assert rec.main(["saved", "--from-workspace", "--stage-log", str(tmp_path / "run.log")]) == 0
    assert json.loads((tmp_path / "records" / "saved.json").read_text())["stage_seconds"] == record["stage_seconds"]


@pytest.mark.parametrize("argv", [["Bad Name", "--from-workspace"], ["ok"], ["ok", "--from-workspace", "--", "true"],
                                  ["ok", "--stage-log", "run.log", "--", "true"],
                                  ["ok", "--from-workspace", "--stage-log", "/nonexistent/run.log"]])
def test_bad_invocations_stop(argv):
    with pytest.raises(SystemExit) as stop:
        rec.main(argv)
    assert stop.value.code == 2


# --- the tables -------------------------------------------------------------------------------------------
def test_a_table_row_per_run_with_intervals_verdicts_and_a_link_to_its_record():
    records = [a_record("default"), a_record("seed-1", {"train.seed": {"default": 42, "value": 1}})]
    lines = runs.table(records, runs.DEFAULT_COLUMNS, "records/")
    assert lines[0] == ("| run | params | ensemble test RMSE | validation's choice | Spearman vs truth | vs control CNN "
                        "| vs image-only | vs isophote | rotation spread | wall time |")  # fmt: skip
    assert lines[2] == (
        "| [default](records/default.json) | default | 0.1068 | resnet_small algorithm1 -> mean_length algorithm1 "
        "| 0.613 [0.56, 0.67] | +0.030 [-0.03, +0.09] ties | +0.061 [+0.00, +0.12] just beats "
        "| +0.093 [+0.05, +0.18] beats | 4.5% | 10.0 min |"
    )
    assert lines[3].startswith("| [seed-1](records/seed-1.json) | `train.seed=1` |")


def test_a_new_control_row_becomes_a_column_and_a_run_without_it_shows_a_dash():
    twin = {"value": 0.40, "gain": 0.21, "gain_95lo": 0.15, "gain_95up": 0.27, "gain_verdict": "beats"}
    records = [a_record("old"), a_record("new", vs_random_weights=twin)]
    lines = runs.table(records, ["spearman_truth", "vs_*"], "../records/")
    assert lines[0].endswith("| vs random weights | wall time |")
    assert lines[2].endswith("| - | 10.0 min |") and lines[3].endswith("| +0.210 [+0.15, +0.27] beats | 10.0 min |")
    assert runs.label("rank_mean_isophote+control_swap_image") == "rank mean isophote+control: saliency for image"


def test_just_loses_and_a_clear_loss():
    assert runs.verdict_text({"gain_verdict": "loses", "gain_95up": -0.01}) == "just loses"
    assert runs.verdict_text({"gain_verdict": "loses", "gain_95up": -0.05}) == "loses"
    assert runs.verdict_text({"gain_verdict": "ties", "gain_95lo": -0.01}) == "ties"


PAGE = """# Runs

<!-- runs-table:start runs=default,seed-1 columns=spearman_truth,vs_image -->
stale
<!-- runs-table:end -->

text after
"""


def test_regenerate_rewrites_only_between_the_markers_and_is_stable(tmp_path):
    write_records(tmp_path / "records", a_record("default"), a_record("seed-1"))
    page = tmp_path / "docs" / "results.md"
    new = rt.regenerate(PAGE, page, tmp_path / "records")
    assert "stale" not in new and new.endswith("<!-- runs-table:end -->\n\ntext after\n")
    assert "| [default](../records/default.json) | default | 0.613 [0.56, 0.67] | +0.061 [+0.00, +0.12] just beats | 10.0 min |" in new
    assert rt.regenerate(new, page, tmp_path / "records") == new


def test_a_quoted_run_without_a_record_and_a_bad_marker_fail(tmp_path):
    write_records(tmp_path / "records", a_record("default"))
    with pytest.raises(ValueError, match="no record for seed-1"):
        rt.regenerate(PAGE, tmp_path / "README.md", tmp_path / "records")
    with pytest.raises(ValueError, match="expected runs=a,b"):
        rt.regenerate(PAGE.replace("runs=", "rows="), tmp_path / "README.md", tmp_path / "records")


def test_the_committed_records_are_complete():
    """Every committed record has a headline and the fields a table and a rerun need."""
    records = sorted(rec.RECORDS.glob("*.json"))
    assert records, "records/ holds at least the default run"
    for path in records:
        record = json.loads(path.read_text())
        assert record["name"] == path.stem and record["headline"] and len(record["commit"]) == 40
        assert {"command", "rerun", "params_changed", "machine", "wall_seconds"} <= record.keys()


# --- the report's seed spread -------------------------------------------------------------------------------
def seed(value: int) -> dict:
    return {"train.seed": {"default": 42, "value": value}}


def test_seed_records_are_the_default_then_the_seed_only_runs_by_seed(tmp_path):
    folder = tmp_path / "records"
    write_records(
        folder, a_record("seed-2", seed(2)), a_record("default"), a_record("seed-1", seed(1)),
        a_record("other", {"xai.method": {"default": "integrated_gradients", "value": "vanilla"}}),
        a_record("seed-and-more", {**seed(3), "images.size_px": {"default": 64, "value": 96}}),
    )  # fmt: skip
    assert [r["name"] for r in runs.seed_records(folder)] == ["default", "seed-1", "seed-2"]
    assert runs.seed_records(tmp_path / "absent") == []


def test_the_report_shows_the_seed_spread_only_with_two_runs_or_more():
    from galaxy_xai.results import report

    assert report.seeds_section(None) == [] and report.seeds_section([a_record("default")]) == []
    lines = report.seeds_section([a_record("default"), a_record("seed-1", seed(1))])
    assert lines[0].startswith("## Seed spread: the default configuration on other training seeds")
    rows = [line for line in lines if line.startswith("| [")]
    assert [row.split("]")[0] for row in rows] == ["| [default", "| [seed-1"]
    assert "(records/seed-1.json)" in rows[1] and "`train.seed=1`" in rows[1]
    assert "0.613 [0.56, 0.67]" in rows[0]  # spearman_truth with its interval
    assert "+0.061 [+0.00, +0.12] just beats" in rows[0]  # vs_image: a lower bound under +0.02


def test_lever_records_are_the_other_recipes_best_first(tmp_path):
    folder = tmp_path / "records"
    method = {"xai.method": {"default": "integrated_gradients", "value": "vanilla"}}
    write_records(
        folder, a_record("default"), a_record("seed-1", seed(1)),
        a_record("weak", method, spearman_truth={"value": 0.30, "value_95lo": 0.2, "value_95up": 0.4, "n": 640}),
        a_record("strong", {"images.size_px": {"default": 64, "value": 96}},
                 spearman_truth={"value": 0.66, "value_95lo": 0.6, "value_95up": 0.7, "n": 640}),
        a_record("real-data", {"data.path": {"default": "data/raw", "value": "/gz2"}}, spearman_truth={}),
        a_record("seed-and-more", {**seed(3), "images.size_px": {"default": 64, "value": 96}}),
    )  # fmt: skip
    names = [r["name"] for r in runs.lever_records(folder)]
    # best Spearman first; the seed-and-more run is a lever (it changed more than the seed); no score last
    assert names[:2] == ["strong", "seed-and-more"] and names[-2:] == ["weak", "real-data"]
    assert runs.lever_records(tmp_path / "absent") == []


def test_the_report_says_which_lever_reached_the_floor_and_which_was_best():
    from galaxy_xai.results import report

    assert report.levers_section(None) == [] and report.levers_section([]) == []
    low = a_record("low", {"xai.method": {"default": "integrated_gradients", "value": "vanilla"}},
                   spearman_truth={"value": 0.45, "value_95lo": 0.38, "value_95up": 0.52, "n": 640})  # fmt: skip
    lines = report.levers_section([low])
    assert lines[0] == "## Other recipes tried: the recorded levers"
    assert "none reaches the floor 0.65 (target 0.70): the best is `low`, 0.450 [0.38, 0.52]" in lines[2]
    rows = [line for line in lines if line.startswith("| [")]
    assert len(rows) == 1 and "(records/low.json)" in rows[0] and '`xai.method="vanilla"`' in rows[0]
    high = a_record("high", {"images.size_px": {"default": 64, "value": 96}},
                    spearman_truth={"value": 0.68, "value_95lo": 0.62, "value_95up": 0.74, "n": 640})  # fmt: skip
    assert "1 of them reaches the floor 0.65 (`high`)" in report.levers_section([high, low])[2]
    assert "every run's 95% interval lies below the floor (the highest upper bound, `low`'s, is 0.520)" in lines[2]
    touching = a_record("touching", {"images.size_px": {"default": 64, "value": 96}},
                        spearman_truth={"value": 0.60, "value_95lo": 0.55, "value_95up": 0.651, "n": 640})  # fmt: skip
    assert "`touching`'s 95% interval reaches the floor (upper bound 0.651)" in report.levers_section([touching, low])[2]
    # the best run's lengths are nearly a random network's: the report also names the best that are not
    near_random = {"value": 0.5, "gain": 0.06, "gain_95lo": 0.001, "gain_95up": 0.12, "gain_verdict": "beats"}
    clear = {"value": 0.1, "gain": 0.35, "gain_95lo": 0.25, "gain_95up": 0.45, "gain_verdict": "beats"}
    ungated = a_record("ungated", {"xai.contrast": {"default": "Class3.2", "value": None}}, vs_random_weights=near_random,
                       spearman_truth={"value": 0.59, "value_95lo": 0.54, "value_95up": 0.65, "n": 640})  # fmt: skip
    text = report.levers_section([ungated, {**low, "headline": {**low["headline"], "vs_random_weights": clear}}])[2]
    assert "the best is `ungated`, 0.590 [0.54, 0.65]; the best whose lengths beat its random-weights twins' clearly (interval above +0.02) is `low`, 0.450" in text
    assert "clearly" not in report.levers_section([low])[2]  # the best is also the clear one


def test_a_section_the_run_added_is_named_once_in_the_params_column():
    new_model = {f"models.vgg_small_1.{k}": {"default": None, "value": v} for k, v in {"arch": "vgg_small", "seed_offset": 1}.items()}
    changed = {**new_model, "xai.cam.grid_px": {"default": None, "value": 32}, "train.seed": {"default": 42, "value": 1}}
    assert runs.params_text(changed) == "new `models.vgg_small_1` (2 keys), `xai.cam.grid_px=32`, `train.seed=1`"
    assert runs.params_text({}) == "default"


def test_a_section_the_run_removed_is_named_once_in_the_params_column():
    gone = {f"models.resnet_small.{k}": {"default": v, "value": None} for k, v in {"arch": "resnet_small", "epochs": 15}.items()}
    changed = {**gone, "xai.rotation.galaxies": {"default": 40, "value": 20}, "control.model.arch": {"default": "x", "value": None}}
    # one key set to null is a value, not a removed section
    assert runs.params_text(changed) == "no `models.resnet_small`, `xai.rotation.galaxies=20`, `control.model.arch=null`"


def lengths_table(objids, measured, truth) -> pd.DataFrame:
    return pd.DataFrame({"objid": objids, "measured_px424": measured, "true_px424": truth})


def test_a_run_is_compared_with_its_commits_run_on_the_same_galaxies(tmp_path):
    """A lever that measures the true lengths exactly beats a default that measures noise; the
    comparison is paired (the galaxies both runs measured) and absent on another sky."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 80, 200)
    noisy = truth + rng.normal(0, 30, 200)
    git(tmp_path, "init", "-q")
    (tmp_path / "plots").mkdir()
    lengths_table(np.arange(200), noisy, truth).to_csv(tmp_path / "plots" / "barlengths.csv", index=False)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "default run")
    # the lever measured 150 of the galaxies (another order), exactly
    order = rng.permutation(200)[:150]
    lengths_table(order, truth[order], truth[order]).to_csv(tmp_path / "plots" / "barlengths.csv", index=False)
    row = rec.vs_commit_run(tmp_path, "HEAD", {"seed": 42, "xai": {"bootstrap": 200}})
    assert row["n"] == 150 and row["gain_verdict"] == "beats" and row["gain_95lo"] > 0
    assert row["value"] + row["gain"] == pytest.approx(1.0)  # the lever's Spearman is exactly 1
    assert runs.cell("vs_commit_run", {"vs_commit_run": row}).endswith("beats")
    # another sky: no galaxy in common
    lengths_table(order + 1000, truth[order], truth[order]).to_csv(tmp_path / "plots" / "barlengths.csv", index=False)
    assert rec.vs_commit_run(tmp_path, "HEAD", {"seed": 42, "xai": {"bootstrap": 200}}) is None
    assert rec.vs_commit_run(tmp_path / "absent", "HEAD", {"seed": 42, "xai": {"bootstrap": 200}}) is None
