"""One committed file per benchmark run, so the speeds the docs quote have a source.

``python -m benchmarks.bench_X --out benchmarks/results/X.json`` writes the script's results together
with the command, the code commit (and whether the work tree had changes), the machine and its load
when the run started: a ratio measured on a busy machine is not one measured idle, and another CPU
gives other absolute times. The docs name these files as the sources of their numbers
(``<!-- sources: benchmarks/results/X.json -->``, checked by tests/test_docs.py).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

from galaxy_xai.io import write_json
from tools.record_experiment import git, machine

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    """``git`` output, or '' where there is no repository (a benchmark still runs from an export)."""
    try:
        return git(*args, root=ROOT).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""


def run_context() -> dict:
    """What a benchmark's numbers depend on besides its code: command, commit, machine, load (call it
    before the timed work, so the load is the one the run started under)."""
    module = Path(sys.argv[0]).with_suffix("").name
    return {
        "command": " ".join(["python -m benchmarks." + module, *sys.argv[1:]]),
        "commit": _git("rev-parse", "--short", "HEAD") or None,
        "code_changes": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "galaxy_xai", "benchmarks")),
        "machine": machine(),
        "load_average_1min": os.getloadavg()[0],
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def save(path: Path | str, context: dict, results: dict) -> None:
    """Write ``{"run": context, "results": results}`` to ``path`` atomically."""
    write_json(Path(path), {"run": context, "results": results})
