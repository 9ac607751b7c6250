"""Rewrite the code deps of every dvc.yaml stage to exactly its import closure.

    python -m tools.sync_dvc_deps          # rewrite dvc.yaml in place, print what changed
    python -m tools.sync_dvc_deps --check  # exit 1 if dvc.yaml is out of date

After moving code between modules, this keeps ``tests/test_dvc_deps.py`` (which computes the same
closure) green without hand-editing a dozen deps lists. Only the contiguous runs of
``- stages/*.py`` / ``- galaxy_xai/**.py`` lines of each stage are replaced, each under a comment line
that says so (:data:`MARK`); data deps, params, outs and other comments are left as written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from tools.deps import ROOT, import_closure, stage_module

CODE_LINE = re.compile(r"^(\s+)- ((?:stages|galaxy_xai)/\S+\.py)\s*$")
MARK = "# code deps: the stage's import closure, written by python -m tools.sync_dvc_deps"
MARK_LINE = re.compile(r"^\s+" + re.escape(MARK) + r"\s*$")
STAGE_LINE = re.compile(r"^  (\w+):\s*$")


def stage_modules(pipeline: dict) -> dict[str, str]:
    """Stage name -> the module its cmd runs (``foreach`` stages: the module of their ``do``;
    ``matrix`` stages keep their cmd at the top, like plain ones). One closure serves every expanded
    copy of a stage: ``${key}`` / ``${item.*}`` only fill in arguments and data paths."""
    return {name: stage_module(stage.get("do", stage)) for name, stage in pipeline["stages"].items()}


def ordered(files: set[str]) -> list[str]:
    """dvc.yaml's order: the stage package first, then the library, each alphabetical."""
    return sorted(files, key=lambda f: (not f.startswith("stages/"), f))


def synced(text: str, modules: dict[str, str], root: Path = ROOT) -> str:
    """``text`` (dvc.yaml) with every stage's run of code-dep lines replaced by its closure."""
    lines, out, stage, i = text.splitlines(keepends=True), [], None, 0
    while i < len(lines):
        if match := STAGE_LINE.match(lines[i]):
            stage = match.group(1)
        if (match := CODE_LINE.match(lines[i])) and stage in modules:
            indent = match.group(1)
            while i < len(lines) and CODE_LINE.match(lines[i]):
                i += 1
            out += [f"{indent}{MARK}\n", *(f"{indent}- {f}\n" for f in ordered(import_closure(root, modules[stage])))]
            continue
        if MARK_LINE.match(lines[i]):  # written again above the run it marks
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if out of date")
    args = parser.parse_args(argv)
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    new = synced(text, stage_modules(yaml.safe_load(text)))
    if new == text:
        print("dvc.yaml: code deps up to date")
        return 0
    if args.check:
        print("dvc.yaml: code deps out of date; run python -m tools.sync_dvc_deps")
        return 1
    path.write_text(new)
    print("dvc.yaml: code deps rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
