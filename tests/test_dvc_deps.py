"""dvc.yaml lists, for every stage, exactly the code the stage runs.

The import closure of each stage's module (``python -m stages.X``) inside this repository is
computed from the source with ``ast`` and compared with the ``.py`` files of the stage's deps:
a missing file means an edit to it would leave stale outputs that ``dvc status`` calls up to date;
an extra one means needless reruns. Every stage but ``check_params`` also depends on the marker
that ``check_params`` writes, so a bad params.yaml stops ``dvc repro`` before any work.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_xai.config import TrainConfig, XaiConfig
from tools.deps import ROOT, code_deps_problems, expanded_stages, import_closure

PARAMS_OK = "data/params.ok"

NOT_EXPLAINER_SETTINGS = {"linearity", "permutations", "bootstrap", "grid", "rotation"}
"""The xai sections no explainer is built from (they measure maps); every other one is a setting of
:func:`galaxy_xai.xai.explainers.from_config`, so a new xai section counts as one until named here."""

EXPLAINERS_MODULE = "galaxy_xai/xai/explainers/__init__.py"

STAGES = expanded_stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_its_import_closure(name):
    problems = code_deps_problems(name, STAGES[name])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_runs_after_the_params_check(name):
    deps = STAGES[name].get("deps", [])
    if name == "check_params":
        assert "params.yaml" in deps, "check_params must depend on params.yaml as a file (any edit reruns it)"
        assert STAGES[name]["outs"] == [PARAMS_OK]
    else:
        assert PARAMS_OK in deps, f"stage {name}: deps lack {PARAMS_OK}, so a bad params.yaml would not stop it"


@pytest.mark.parametrize("name", sorted(n for n, stage in STAGES.items() if EXPLAINERS_MODULE in stage.get("deps", [])))
def test_a_stage_that_builds_explainers_lists_every_explainer_setting(name):
    """Otherwise editing that setting (e.g. xai.cam.grid_px) leaves its maps stale and dvc status
    calls them up to date."""
    listed = {str(p) for p in STAGES[name].get("params", [])}
    settings = {f"xai.{f.name}" for f in dataclasses.fields(XaiConfig) if f.name not in NOT_EXPLAINER_SETTINGS}
    missing = sorted(key for key in settings if key not in listed and "xai" not in listed)
    assert not missing, f"stage {name} builds explainers but does not list the params {', '.join(missing)}"


def test_the_control_lists_every_training_setting_but_the_bar_weight():
    """The control CNN reads train.* except bar_weight (it has one output): a new train key that it
    does not list would leave its outputs stale, the bar weight listed would rerun it for nothing."""
    listed = {str(p) for p in STAGES["control"]["params"]}
    expected = {f"train.{f.name}" for f in dataclasses.fields(TrainConfig) if f.name != "bar_weight"}
    assert "train" not in listed and {key for key in listed if key.startswith("train.")} == expected


def test_the_stages_checked_here_are_the_stages_dvc_sees():
    # The expansion above mimics DVC's foreach / matrix naming; if it drifted, stages would go unchecked.
    dvc = Path(sys.executable).with_name("dvc")
    proc = subprocess.run([str(dvc), "stage", "list", "--name-only"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(STAGES)


def test_closure_follows_every_import_form_transitively(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "galaxy_xai").mkdir()
    files = {
        "stages/__init__.py": "import os\n",
        "stages/_common.py": "from galaxy_xai.config import load\n",
        "stages/run.py": "from galaxy_xai import a, b\nfrom stages._common import start\nimport numpy\n",
        "galaxy_xai/__init__.py": "",
        "galaxy_xai/config.py": "import yaml\n",
        "galaxy_xai/a.py": "import galaxy_xai.c\n",
        "galaxy_xai/b.py": "def f():\n    from . import d\n",
        "galaxy_xai/c.py": "from galaxy_xai.units import X\n",
        "galaxy_xai/d.py": "",
        "galaxy_xai/units.py": "X = 1\n",
        "galaxy_xai/unused.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    closure = import_closure(tmp_path, "stages.run")
    assert closure == set(files) - {"galaxy_xai/unused.py"}


def test_the_check_names_the_stage_and_a_missing_or_stale_file(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "galaxy_xai").mkdir()
    for rel in ("stages/__init__.py", "galaxy_xai/__init__.py", "galaxy_xai/units.py", "galaxy_xai/io.py"):
        (tmp_path / rel).write_text("")
    (tmp_path / "stages/s.py").write_text("from galaxy_xai import units\n")
    stage = {"cmd": "python -m stages.s --out x", "deps": ["x.csv", "stages/__init__.py", "stages/s.py",
                                                          "galaxy_xai/__init__.py", "galaxy_xai/units.py"]}
    assert code_deps_problems("s", stage, tmp_path) == []
    # A new import without the dependency is caught, naming the stage and the file ...
    (tmp_path / "stages/s.py").write_text("from galaxy_xai import units\nfrom galaxy_xai.io import write\n")
    assert code_deps_problems("s", stage, tmp_path) == [
        "stage s: deps lack galaxy_xai/io.py (imported when it runs)"
    ]
    # ... and so is a dependency on code the stage no longer imports.
    (tmp_path / "stages/s.py").write_text("")
    assert code_deps_problems("s", stage, tmp_path) == [
        "stage s: deps list galaxy_xai/__init__.py, galaxy_xai/units.py, which it does not import"
    ]


def test_every_phase_package_names_its_modules_in_all():
    """The subpackages of galaxy_xai are the pipeline's phases; each ``__all__`` lists its modules."""
    import importlib
    import pkgutil

    import galaxy_xai

    for name in galaxy_xai.__all__:
        module = importlib.import_module(f"galaxy_xai.{name}")
        if hasattr(module, "__path__"):
            found = sorted(m.name for m in pkgutil.iter_modules(module.__path__))
            assert sorted(module.__all__) == found, name
        else:
            assert (ROOT / "galaxy_xai" / f"{name}.py").is_file(), name
    top = sorted(m.name for m in pkgutil.iter_modules(galaxy_xai.__path__))
    assert sorted(galaxy_xai.__all__) == top
