"""Generate the tables of runs in README.md and docs/*.md from the records (``records/NAME.json``).

    python -m tools.run_tables          # rewrite every table between its markers, print what changed
    python -m tools.run_tables --check  # exit 1 if a table is out of date or names a run with no record

A table is whatever stands between two marker comments of a page; the start marker names the runs
(records, in row order) and optionally the headline rows to show as columns, in order:

    <!-- runs-table:start runs=default,seed-1 columns=morphology_rmse,spearman_truth,vs_* -->
    <!-- runs-table:end -->

``columns`` entries are headline row names (:mod:`galaxy_xai.results.headline`); ``vs_*`` stands for every
``vs_<control>`` row any of the runs has (so a new control becomes a column by itself); the default
is :data:`DEFAULT_COLUMNS`. Each table starts with the run (a link to its record) and the params it
changed, and ends with the run's wall time (``-`` if it was recorded without running it). Everything between the markers is rewritten: edit the records or the markers, never the
table (``tests/test_docs.py`` fails when a table and its records disagree).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from galaxy_xai.results.runs import DEFAULT_COLUMNS, read_records, table

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "records"
MARKER = re.compile(r"<!-- runs-table:start(?P<options>[^>]*?)-->\n(?P<table>.*?)<!-- runs-table:end -->", re.S)


def options(text: str) -> dict[str, list[str]]:
    """A start marker's ``key=a,b`` options: {"runs": [...], "columns": [...]}."""
    found = dict(re.findall(r"(\w+)=(\S+)", text))
    unknown = found.keys() - {"runs", "columns"}
    if unknown or "runs" not in found:
        raise ValueError(f"runs-table marker {text.strip()!r}: expected runs=a,b[ columns=x,y]")
    return {key: value.split(",") for key, value in found.items()}


def regenerate(page_text: str, page: Path, folder: Path = RECORDS) -> str:
    """``page_text`` with every runs table rebuilt from the records in ``folder``."""
    prefix = Path(os.path.relpath(folder, page.parent)).as_posix() + "/"

    def rebuilt(match: re.Match) -> str:
        opts = options(match.group("options"))
        lines = table(read_records(opts["runs"], folder), opts.get("columns", DEFAULT_COLUMNS), prefix)
        return f"<!-- runs-table:start{match.group('options')}-->\n" + "\n".join(lines) + "\n<!-- runs-table:end -->"

    return MARKER.sub(rebuilt, page_text)


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose tables are generated: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        try:
            new = regenerate(text, page)
        except ValueError as err:
            print(f"{page.relative_to(ROOT)}: {err}", file=sys.stderr)
            return 1
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "rewritten"
    print(f"runs tables {verb}: {', '.join(stale)}" if stale else "runs tables: up to date")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
