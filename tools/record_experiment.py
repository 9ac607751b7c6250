"""Record one run of the study as ``records/NAME.json``: what was run, on which code and machine, how
long it took and its headline (``metrics/headline/``, written by the figure stage).

    python -m tools.record_experiment seed-1 -- dvc exp run -S train.seed=1     # run, time, record
    python -m tools.record_experiment seed-1 --from-workspace --command "dvc exp run -S train.seed=1"

The first form runs the command after ``--`` in the workspace, times it and, if it succeeds, records
the workspace as the command left it. The second records the workspace as it is, running nothing:
after a ``dvc exp run`` or ``dvc repro`` that was not wrapped, or after ``dvc exp apply NAME`` of a
queued experiment (the wall time is then unknown unless ``--wall-seconds`` gives it, and so is the
machine unless ``--ran-here`` says the run was on this one: CPU training differs between CPUs).

A record holds the command, the params that differ from ``params.yaml`` at the code commit (the
workspace's params.yaml against ``git show COMMIT:params.yaml``: what ``dvc exp run -S`` changed),
the commit (``HEAD`` unless ``--commit`` names the one whose ``dvc.lock`` produced the outputs),
tracked code files that differ from ``HEAD`` (none, for a run DVC can re-create), the machine (CPU
model, cores; null when unknown), the wall time, the seconds of every stage that ran (from the command's
log: ``--stage-log`` names a saved one; {} when there is none) and the whole headline: every row of
``metrics/headline/`` with its interval and paired verdict, so a record grows with the headline. A
record also holds ``vs_commit_run``: the run's Spearman against the true length minus that of the
run committed at its commit (``plots/barlengths.csv`` there), paired on the galaxies both measured,
so a lever is compared with the default on the same galaxies (absent on another sky, or without truth). ``dvc exp run -S KEY=VALUE ...``
at the commit re-creates the run. ``python -m tools.run_tables`` then regenerates the tables of runs
in README.md and docs/ from the records.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from galaxy_xai import statistics
from galaxy_xai.io import write_json
from galaxy_xai.results.headline import paired_fields, read_headline

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "records"
HEADLINE = ROOT / "metrics" / "headline"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
CODE_PATTERNS = ("stages", "galaxy_xai", "dvc.yaml", "requirements*.txt", ".dvc/plots")
"""Tracked paths whose uncommitted changes would make a run differ from its commit's code."""


def flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """{dotted key: leaf value} of a params tree (lists are leaves, as ``dvc exp run -S`` sets them)."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def params_changed(default: Mapping, workspace: Mapping) -> dict[str, dict]:
    """{dotted key: {"default": ..., "value": ...}} of every param that differs (a key only one side
    has: the other is None), in key order."""
    before, after = flatten(default), flatten(workspace)
    return {
        key: {"default": before.get(key), "value": after.get(key)}
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key) or (key in before) != (key in after)
    }


def set_options(changed: Mapping[str, Mapping]) -> list[str]:
    """The ``-S KEY=VALUE`` options of ``dvc exp run`` that re-create ``changed`` (values as YAML)."""
    return [f"{key}={yaml.safe_dump(entry['value'], default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, entry in changed.items()]  # fmt: skip


def rerun_command(changed: Mapping[str, Mapping]) -> str:
    """The command that re-creates a run with these params at its commit."""
    return " ".join(["dvc exp run", *(f"-S '{option}'" for option in set_options(changed))])


def cpu_model(cpuinfo: str) -> str | None:
    """The CPU model of /proc/cpuinfo's text ('model name', or 'Hardware' / 'Processor' on ARM)."""
    for field in ("model name", "Hardware", "Processor"):
        if match := re.search(rf"^{field}\s*:\s*(.+)$", cpuinfo, re.M):
            return match.group(1).strip()
    return None


SIMD_FLAGS = ("avx2", "fma", "avx512f")
"""The CPU's vector extensions a record names: NumPy, GalSim's FFTs and TensorFlow pick their kernels by
them, so two CPUs with the same model name can render a different sky and train different models."""


def cpu_flags(cpuinfo: str) -> list[str]:
    """Which of :data:`SIMD_FLAGS` the first CPU of /proc/cpuinfo's text has, in that order."""
    match = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
    present = set(match.group(1).split()) if match else set()
    return [flag for flag in SIMD_FLAGS if flag in present]


def machine() -> dict:
    """This machine: CPU model and vector extensions, logical cores, system, Python."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    return {"cpu": cpu_model(text) or platform.processor() or platform.machine(), "cpu_flags": cpu_flags(text),
            "cores": os.cpu_count(), "system": platform.platform(terse=True), "python": platform.python_version()}  # fmt: skip


STAGE_START = re.compile(r"^Running stage '([^']+)':", re.M)
LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d) ", re.M)


def stage_seconds(log: str) -> dict[str, float]:
    """{stage: seconds} of the stages a ``dvc repro`` / ``dvc exp run`` log shows running, in run order.

    DVC does not time stages; the stages' own log lines start with HH:MM:SS. A stage's seconds run
    from its first line to the next stage's first line, so they include its outputs' hashing and the
    next stage's start-up (importing TensorFlow: a few seconds); the last stage ends at its last line.
    A stage that logged nothing gets no entry; a clock passing midnight is allowed for.
    """
    starts = [(m.start(), m.group(1)) for m in STAGE_START.finditer(log)]
    first: dict[str, int] = {}
    end = 0
    bounds = [pos for pos, _ in starts] + [len(log)]
    for (pos, name), stop in zip(starts, bounds[1:], strict=True):
        times = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in LOG_TIME.findall(log, pos, stop)]
        if times:
            start = times[0]
            while start < end:  # the clock passed midnight
                start += 86_400
            first[name], end = start, start + (times[-1] - times[0]) % 86_400
    ends = [*list(first.values())[1:], end] if first else []
    return {name: float(stop - start) for (name, start), stop in zip(first.items(), ends, strict=True)}


def run_logged(command: Sequence[str], root: Path) -> tuple[int, str]:
    """Run ``command`` in ``root``, its output passed through to this terminal and kept: (exit status, log)."""
    lines = []
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    return proc.returncode, "".join(lines)


LENGTHS_TABLE = "plots/barlengths.csv"
"""The measure stage's per-galaxy lengths (git-tracked): what a paired comparison of two runs reads."""


def paired_vs(run: pd.DataFrame, base: pd.DataFrame, n_boot: int, seed: int) -> dict | None:
    """The run's Spearman of ``measured_px424`` vs ``true_px424`` minus the base run's, paired on the
    galaxies (``objid``) both measured, as a headline row (``value``: the base's Spearman; ``gain``:
    the difference with its bootstrap interval and verdict); None if they share fewer than 10 galaxies
    with a true length (another sky, or real data)."""
    both = run.merge(base, on="objid", suffixes=("", "_base"))
    both = both[np.isfinite(both["true_px424"]) & np.isfinite(both["measured_px424"]) & np.isfinite(both["measured_px424_base"])]
    if len(both) < 10 or not np.allclose(both["true_px424"], both["true_px424_base"]):
        return None
    run_px424, base_px424, truth = (both[c].to_numpy() for c in ("measured_px424", "measured_px424_base", "true_px424"))
    diff = statistics.paired_bootstrap_difference(run_px424, base_px424, truth, "spearman", n_boot, np.random.default_rng(seed))
    return {"value": statistics.spearman(base_px424, truth), **paired_fields(diff.to_json()), "n": len(both)}


def vs_commit_run(root: Path, commit: str, params: Mapping) -> dict | None:
    """:func:`paired_vs` of the workspace's lengths against those committed at ``commit`` (None if
    either is missing), with the workspace params' ``xai.bootstrap`` resamples and ``seed``."""
    try:
        base = pd.read_csv(io.StringIO(git("show", f"{commit}:{LENGTHS_TABLE}", root=root)))
        run = pd.read_csv(root / LENGTHS_TABLE)
    except (OSError, subprocess.CalledProcessError, pd.errors.ParserError):
        return None
    if not {"objid", "measured_px424", "true_px424"} <= set(run.columns) & set(base.columns):
        return None
    return paired_vs(run, base, int(params["xai"]["bootstrap"]), int(params["seed"]))


def git(*args: str, root: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def record(
    name: str,
    command: str,
    headline: Mapping[str, Mapping],
    changed: Mapping[str, Mapping],
    commit: str,
    code_changes: Sequence[str],
    host: Mapping | None,
    wall_seconds: float | None,
    source: str,
    recorded: str,
    stages: Mapping[str, float] | None = None,
    vs_commit: Mapping | None = None,
) -> dict:
    """A run's record (see the module docstring); ``source``: "ran" (this tool ran and timed the
    command) or "workspace" (recorded from the workspace as it was)."""
    if not headline:
        raise ValueError("no headline rows: metrics/headline/ is empty (the figure stage writes it)")
    return {
        "name": name, "command": command, "rerun": rerun_command(changed), "params_changed": dict(changed),
        "commit": commit, "code_changes": list(code_changes), "machine": None if host is None else dict(host),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "stage_seconds": {stage: round(seconds, 1) for stage, seconds in (stages or {}).items()}, "source": source,
        "recorded": recorded, "headline": dict(headline), "vs_commit_run": None if vs_commit is None else dict(vs_commit),
    }  # fmt: skip


def workspace_record(
    name: str, command: str, commit: str, wall_seconds: float | None, source: str, root: Path = ROOT, here: bool = True,
    stages: Mapping[str, float] | None = None,
) -> dict:
    """The record of the workspace of ``root`` as it is now; ``here``: the run was on this machine
    (else the machine is unknown: null)."""
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}", root=root).strip()
    default = yaml.safe_load(git("show", f"{full}:params.yaml", root=root))
    workspace = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    code = git("diff", "--name-only", "HEAD", "--", *CODE_PATTERNS, root=root).split()
    recorded = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return record(name, command, read_headline(root / "metrics" / "headline"), params_changed(default, workspace),
                  full, code, machine() if here else None, wall_seconds, source, recorded, stages,
                  vs_commit_run(root, full, workspace))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s NAME [options] [-- COMMAND ...]")
    parser.add_argument("name", help="the run's name: records/NAME.json (lower case, digits, . _ -)")
    parser.add_argument("--from-workspace", action="store_true", help="run nothing: record the workspace as it is")
    parser.add_argument("--command", help="the command that made the workspace (default: the one after --, "
                        "else the dvc exp run that re-creates the params)")  # fmt: skip
    parser.add_argument("--commit", default="HEAD", help="the code commit of the run (default HEAD)")
    parser.add_argument("--wall-seconds", type=float, help="the run's wall time, if measured elsewhere")
    parser.add_argument("--ran-here", action="store_true", help="with --from-workspace: the run was on this machine")
    parser.add_argument("--stage-log", type=Path, help="with --from-workspace: the saved output of the run, for its stages' seconds")
    parser.add_argument("--force", action="store_true", help="replace an existing record")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not NAME.fullmatch(args.name):
        parser.error(f"NAME {args.name!r}: use lower case letters, digits, '.', '_' and '-'")
    if bool(run) == args.from_workspace:
        parser.error("give either a command after -- (run and time it) or --from-workspace (run nothing)")
    out = RECORDS / f"{args.name}.json"
    if out.exists() and not args.force:
        parser.error(f"{out} exists (--force replaces it)")
    if args.stage_log and run:
        parser.error("--stage-log is for --from-workspace: a run's own output is read as it runs")
    wall = args.wall_seconds
    try:
        log = args.stage_log.read_text(encoding="utf-8", errors="replace") if args.stage_log else ""
    except OSError as err:
        parser.error(f"--stage-log {args.stage_log}: {err.strerror}")
    if run:
        began = time.perf_counter()
        status, log = run_logged(run, ROOT)
        wall = time.perf_counter() - began
        if status:
            print(f"record_experiment: {' '.join(run)} failed (exit {status}); nothing recorded", file=sys.stderr)
            return status
    try:
        rec = workspace_record(args.name, args.command or " ".join(run), args.commit, wall,
                               "ran" if run else "workspace", root=ROOT, here=bool(run) or args.ran_here,
                               stages=stage_seconds(log))  # fmt: skip
    except (ValueError, subprocess.CalledProcessError) as err:
        print(f"record_experiment: {getattr(err, 'stderr', None) or err}", file=sys.stderr)
        return 1
    if not rec["command"]:
        rec["command"] = rec["rerun"] if rec["params_changed"] else "dvc repro"
    write_json(out, rec)
    print(f"wrote {out}: {len(rec['headline'])} headline rows, "
          f"{len(rec['params_changed'])} params changed; now python -m tools.run_tables")  # fmt: skip
    if rec["code_changes"]:
        print(f"note: uncommitted code changes {rec['code_changes']}: dvc cannot re-create this run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
