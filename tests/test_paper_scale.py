"""The paper's configuration: configs/paper.yaml, the command that uses it, and a run of it end to end.

The unit tests check the file holds the paper's values and that ``tools.use_params`` writes a valid
params.yaml or nothing. The end-to-end test runs the documented command and the real ``dvc repro``
of that configuration (VGG16, ResNet50V2 and Xception at 224 px with random weights,
abs_gradient, symmetries 1, abs_pearson, the paper's T_c grid) on the synthetic sky in a temporary
copy of the repository, shrunk only in counts (``TINY_COUNTS``; and float32, as a CPU computes),
through every stage to the report.
It is marked ``paper_scale`` (and ``e2e``) so it can be skipped locally: ``pytest -m "not paper_scale"``.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import yaml

from galaxy_xai.config import MODEL_KINDS, config_from_dict, load_config
from tests.e2e import ROOT, make_repo, run, stage_names, stages_run
from tools.use_params import use_params

PAPER_FILE = ROOT / "configs" / "paper.yaml"
PAPER_ARCHS = ("vgg16", "resnet50v2", "xception")
PAPER_T_C = [0.7, 0.75, 0.8, 0.85, 0.9]

# Counts only: every architecture, input size, attribution and rule stays the paper's. Each costs
# (measured, 2 shared CPU cores) as a multiple of one 224-px VGG16 forward pass (0.18 s):
TINY_COUNTS = {
    "data": {"path": "data/raw"},  # the synthetic sky (synthesize writes it)
    "synthetic": {"n_labelled": 48, "n_unlabelled": 2, "n_bars": 24, "n_coadd_repeats": 2, "workers": 1},
    "models": {arch: {"epochs": 1, "batch_size": 8, "weights": None} for arch in PAPER_ARCHS},
    # Hardware, not science: mixed_float16 on a CPU is emulated (one epoch of VGG16 on 40 images ran
    # 9 min here and was stopped); float32 is what a CPU computes fast.
    "train": {"mixed_precision": False},
    "xai": {
        "permutations": 50,
        "smoothgrad": {"samples": 2, "batch_size": 16},  # 40 maps x 2 gradients per backbone
        "integrated_gradients": {"steps": 2},  # explainers stage: 3 gradients per galaxy
        "occlusion": {"patch": 112, "stride": 112},  # explainers stage: 4 patches per galaxy, not 3,136
        "rotation": {"galaxies": 2, "angles_deg": [0, 90]},
    },
    "control": {"folds": 2, "model": {"epochs": 1, "batch_size": 8, "weights": None}},
    # Score-CAM costs one forward pass per channel of the last conv layer (512 for VGG16, 2,048 for
    # ResNet50V2 / Xception) per galaxy, whatever the counts (~12 min here for 4 galaxies): left out.
    # The cascade and the permuted-label model are tested at 64 px (tests/test_e2e.py): off here.
    "explainers": {
        "galaxies": 4, "deletion_steps": 2, "figure_galaxies": 2, "cascade_galaxies": 0,
        "methods": ["smoothgrad", "vanilla", "gradcam", "smoothgrad_sq", "vargrad", "integrated_gradients", "occlusion",
                    "gradcam_pp"],
    },
    # The heatmaps go through a shard stage and the checked merge (two shards: tests/test_heatmap_shards.py);
    # one shard per model and kind keeps the nine 224-px backbones' loads to nine.
    "heatmap": {"shards": [0]},
    "segmentation": {"epochs": 1, "batch_size": 8},  # a 224-px U-Net: one epoch shows it runs
}


def assignments(change: dict, prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}}`` -> ``["a.b=1"]``: nested params as ``--set`` arguments (JSON is YAML)."""
    out = []
    for key, value in change.items():
        if isinstance(value, dict):
            out += assignments(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def test_the_paper_file_holds_the_papers_values():
    cfg = load_config(PAPER_FILE)
    assert {name: m.arch for name, m in cfg.models.items()} == dict(zip(PAPER_ARCHS, PAPER_ARCHS, strict=True))
    assert all(m.weights == "imagenet" and m.epochs == 100 for m in cfg.models.values())
    assert cfg.images.size_px == 224 and cfg.images.crop_px is None
    xai = cfg.xai
    assert (xai.method, xai.attribution, xai.linearity) == ("smoothgrad", "abs_gradient", "abs_pearson")
    assert (xai.smoothgrad.samples, xai.smoothgrad.symmetries, xai.smoothgrad.noise) == (256, 1, 0.1)
    assert xai.grid.estimators == ["algorithm1"] and xai.grid.mask == ["none"]
    assert xai.grid.corr_threshold == PAPER_T_C and xai.grid.len_threshold == [10, 20, 30, 40, 50]
    assert xai.grid.x_input == [False, True]
    assert cfg.control.model.arch == "xception" and cfg.prepare.control_train_fraction == 0.64


def test_the_paper_file_is_complete():
    """Every key of the default params.yaml is in the paper file, so it reads alone, without defaults."""

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in tree.items():
            if k == "models":  # model names differ; each model's keys are checked below
                continue
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return out

    default, paper = (yaml.safe_load(p.read_text()) for p in (ROOT / "params.yaml", PAPER_FILE))
    assert keys(default) - keys(paper) == set()
    model_keys = set(next(iter(default["models"].values())))
    assert all(set(m) == model_keys for m in paper["models"].values())


def test_use_params_writes_the_file_with_the_changes_and_keeps_comments(tmp_path):
    out = tmp_path / "params.yaml"
    text = use_params(PAPER_FILE, ["data.path=/data/gz", "models.vgg16.weights=null", "xai.grid.x_input=[false]"], out)
    assert out.read_text() == text
    cfg = load_config(out)
    assert cfg.data.path == "/data/gz" and cfg.models["vgg16"].weights is None
    assert cfg.models["xception"].weights == "imagenet" and cfg.xai.grid.x_input == [False]
    # Comments and every unchanged line stay; null is written as null.
    before, after = PAPER_FILE.read_text().splitlines(), text.splitlines()
    assert len(before) == len(after)
    differ = [(b.split(":")[0], a) for b, a in zip(before, after, strict=True) if b != a]
    assert [key for key, _ in differ] == ["  path", "    weights", "    x_input"], differ
    assert differ[1][1].startswith("    weights: null") and "#" in differ[1][1], differ


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["xai.smoothgrad.noise=3"], "xai.smoothgrad.noise = 3.0: expected a number in [0.0, 1.0]"),
        (["xia.noise=1"], "xia: unknown key"),
        (["xai.smoothgrad.noise.sigma=1"], "xai.smoothgrad.noise is 0.1, not a mapping"),
        (["images.size_px=32"], "xception needs an input of at least 71 px"),
        (["data.path"], "expected KEY=VALUE"),
    ],
)
def test_use_params_refuses_a_bad_change_and_leaves_params_untouched(tmp_path, change, message):
    from galaxy_xai.config import ConfigError

    out = tmp_path / "params.yaml"
    out.write_text("untouched\n")
    with pytest.raises(ConfigError) as err:
        use_params(PAPER_FILE, change, out)
    assert message in str(err.value)
    assert out.read_text() == "untouched\n"


def test_the_tiny_counts_keep_the_paper_configuration_but_the_counts(tmp_path):
    change = assignments(TINY_COUNTS)
    tiny = config_from_dict(yaml.safe_load(use_params(PAPER_FILE, change, tmp_path / "p.yaml")))
    cfg = load_config(PAPER_FILE)
    assert [m.arch for m in tiny.models.values()] == list(PAPER_ARCHS) and tiny.images.size_px == 224
    assert tiny.images == cfg.images and tiny.xai.grid == cfg.xai.grid
    assert (tiny.xai.attribution, tiny.xai.linearity, tiny.xai.smoothgrad.symmetries) == ("abs_gradient", "abs_pearson", 1)
    assert all(m.weights is None for m in (*tiny.models.values(), tiny.control.model))  # no download in tests


@pytest.mark.e2e
@pytest.mark.paper_scale
def test_the_paper_configuration_runs_end_to_end_at_tiny_counts(tmp_path):
    repo = make_repo(tmp_path / "repo", {})
    change = assignments(TINY_COUNTS)
    # The documented command (README, docs/paper-scale.md), with the counts shrunk.
    run(repo, "python", "-m", "tools.use_params", "configs/paper.yaml", *(f"--set={a}" for a in change))
    start = time.perf_counter()
    proc = run(repo, "dvc", "exp", "run", "-n", "paper")
    log = proc.stdout + proc.stderr
    ran = stages_run(log)
    print(f"paper-scale dvc exp run: {time.perf_counter() - start:.0f} s")
    assert ran == set(stage_names(repo)), log[-3000:]
    assert {f"heatmap_shard@{arch}-{kind}-{i}" for arch in PAPER_ARCHS for kind in MODEL_KINDS for i in (0,)} <= ran

    for arch in PAPER_ARCHS:
        metrics = json.loads((repo / f"metrics/train/{arch}.json").read_text())
        assert metrics, arch
        heatmap = np.load(repo / f"data/heatmaps/morphology/{arch}.npz")
        assert heatmap["maps"].shape[1:] == (224, 224), arch
    grid = json.loads((repo / "metrics/gridsearch.json").read_text())
    assert grid["linearity"] == "abs_pearson"
    chosen = grid["chosen"]
    assert (chosen["estimator"], chosen["mask"]) == ("algorithm1", "none")
    assert chosen["corr_threshold"] in PAPER_T_C
    table2 = (repo / "metrics/table2.md").read_text()
    assert all(f"| {arch} |" in table2 for arch in PAPER_ARCHS), table2
    report = (repo / "report.md").read_text()
    assert "saliency method rho" in report and "control CNN rho" in report
    control = json.loads((repo / "metrics/control.json").read_text())
    assert control["folds"] == 2 and len(list((repo / "models/control").glob("fold*.keras"))) == 2
    study = json.loads((repo / "metrics/explainers.json").read_text())
    assert list(study["explainers"]) == TINY_COUNTS["explainers"]["methods"]
    status = run(repo, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    assert '"paper"' in run(repo, "dvc", "exp", "show", "--json").stdout  # comparable with any other run
