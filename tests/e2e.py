"""Harness for end-to-end tests: the real ``dvc repro`` in a temporary copy of the repository."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

def committed_params() -> dict:
    """The committed params.yaml as a mapping."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def model_entry(arch: str, **changes) -> dict:
    """A complete ``models.<name>`` entry (a params file gives every key): the committed file's first
    model with ``arch`` and ``changes``."""
    first = next(iter(committed_params()["models"].values()))
    return {**first, "arch": arch, **changes}


TINY_PARAMS = {
    "synthetic": {"n_labelled": 90, "n_unlabelled": 4, "n_bars": 36, "n_coadd_repeats": 2, "workers": 1},
    "images": {"crop_px": 212, "size_px": 40},
    "models": {
        name: model_entry(name, epochs=2, batch_size=16, learning_rate=0.002, weights=None)
        for name in ("vgg_small", "resnet_small", "xception_small")
    },
    "xai": {
        "permutations": 50,
        "smoothgrad": {"samples": 3, "batch_size": 64},
        "rotation": {"galaxies": 4, "angles_deg": [0, 90]},
    },
    "control": {"folds": 2, "model": {"arch": "xception_small", "epochs": 2, "batch_size": 16}},
    "explainers": {"galaxies": 6, "deletion_steps": 2, "figure_galaxies": 2, "cascade_galaxies": 2},
    "segmentation": {"epochs": 2, "batch_size": 8},  # 40-px images: 20-px masks, halved twice to 5
}


def merge(base: dict, change: dict) -> dict:
    """Deep-merge ``change`` into a copy of ``base`` (``models`` is replaced whole: give complete
    entries, e.g. :func:`model_entry`)."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "models":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def complete(change: dict) -> dict:
    """The committed params.yaml with ``change`` deep-merged in: a complete params mapping."""
    return merge(committed_params(), change)


def tracked_files(root: Path = ROOT) -> list[str]:
    """Files git would commit (tracked or new, not ignored): what a fresh clone has."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def env() -> dict[str, str]:
    """The environment of a user who activated the project's virtualenv."""
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["DVC_NO_ANALYTICS"] = "1"
    e["TF_CPP_MIN_LOG_LEVEL"] = "2"
    e.setdefault("GIT_AUTHOR_NAME", "e2e")
    e.setdefault("GIT_AUTHOR_EMAIL", "e2e@example.org")
    e.setdefault("GIT_COMMITTER_NAME", "e2e")
    e.setdefault("GIT_COMMITTER_EMAIL", "e2e@example.org")
    return e


def run(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def make_repo(dest: Path, params_change: dict) -> Path:
    """Copy the committed project into ``dest``, write tiny params and make it a one-commit git repo."""
    for rel in tracked_files():
        if rel.startswith(("metrics/", "plots/")) or rel in ("dvc.lock", "report.md"):
            continue  # outputs of the real run: the copy must build its own
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    write_params(dest, complete(params_change))
    run(dest, "git", "init", "-q")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-q", "-m", "e2e")
    return dest


def read_params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stages_run(log: str) -> set[str]:
    """Names of the stages a ``dvc repro`` log says it started."""
    return set(re.findall(r"Running stage '([^']+)'", log))


def repro(repo: Path, *args: str) -> tuple[set[str], str]:
    """Run ``dvc repro``; return the names of the stages that ran and the log."""
    proc = run(repo, "dvc", "repro", *args)
    log = proc.stdout + proc.stderr
    return stages_run(log), log


def planned_repro(repo: Path, params: dict) -> tuple[set[str], str]:
    """The stages ``dvc repro --dry`` would run with ``params`` written to params.yaml: DVC's plan from
    its hashes of every dependency, without the minutes of running it (the module's full ``dvc
    repro`` is the run). params.yaml is restored afterwards, so the next test starts clean."""
    path = repo / "params.yaml"
    original = path.read_bytes()
    write_params(repo, params)
    try:
        return repro(repo, "--dry")
    finally:
        path.write_bytes(original)


def failed_repro(repo: Path, params_bytes: bytes, *args: str) -> tuple[set[str], str]:
    """``dvc repro`` with params.yaml replaced by ``params_bytes``, expected to fail.

    Returns the stages that started and the log; params.yaml is restored afterwards.
    """
    path = repo / "params.yaml"
    before = path.read_bytes()
    path.write_bytes(params_bytes)
    try:
        proc = run(repo, "dvc", "repro", *args, check=False)
    finally:
        path.write_bytes(before)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"dvc repro succeeded on bad params:\n{log[-3000:]}"
    return stages_run(log), log


def stage_names(repo: Path) -> list[str]:
    proc = run(repo, "dvc", "stage", "list", "--name-only")
    return proc.stdout.split()
