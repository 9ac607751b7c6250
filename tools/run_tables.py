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
import fnmatch
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "records"
MARKER = re.compile(r"<!-- runs-table:start(?P<options>[^>]*?)-->\n(?P<table>.*?)<!-- runs-table:end -->", re.S)
DEFAULT_COLUMNS = ("morphology_rmse", "choice", "spearman_truth", "vs_*", "rotation_spread")
JUST = 0.02
"""A verdict whose interval clears 0 by less than this reads "just beats" / "just loses" (issue #27)."""

LABELS = {
    "morphology_rmse": "ensemble test RMSE", "morphology_bar_auc": "bar ROC AUC", "choice": "validation's choice",
    "paper_rho": "rho (paper convention)", "spearman_truth": "Spearman vs truth",
    "spearman_catalogue": "Spearman vs catalogue", "k_models_asymptote": "infinitely many models",
    "rotation_spread": "rotation spread", "vs_image": "vs image-only", "vs_control_cnn": "vs control CNN",
    "vs_fourier_light": "vs Fourier of the light",
}  # fmt: skip
"""Column headers of known headline rows; others: the row name with 'vs_' as 'vs ' (see :func:`label`)."""


def label(row: str) -> str:
    """A column's header: :data:`LABELS`, else the row name ('vs_isophote' -> 'vs isophote',
    'rank_mean_isophote+control' -> 'rank mean isophote+control: + saliency')."""
    if row in LABELS:
        return LABELS[row]
    if row.startswith("rank_mean_"):
        rest, _, swapped = row.removeprefix("rank_mean_").partition("_swap_")
        return f"rank mean {rest}: {'saliency for ' + swapped if swapped else '+ saliency'}"
    return row.replace("vs_", "vs ", 1).replace("_", " ")


def verdict_text(fields: Mapping) -> str:
    """The paired verdict as a table says it: 'beats', 'just beats' (lower bound under +0.02), 'ties', ..."""
    verdict = fields.get("gain_verdict", "")
    close = (verdict == "beats" and fields.get("gain_95lo", 1) < JUST) or (
        verdict == "loses" and fields.get("gain_95up", -1) > -JUST
    )
    return f"just {verdict}" if close else verdict


def interval(fields: Mapping, key: str, fmt: str) -> str:
    """``fields[key]`` with its ``_95lo`` / ``_95up`` bounds, e.g. '0.613 [0.56, 0.67]'."""
    bounds = [fields.get(f"{key}_95{side}") for side in ("lo", "up")]
    text = format(fields[key], fmt)
    if None in bounds:
        return text
    bound_fmt = "+.2f" if fmt.startswith("+") else ".2f"
    return f"{text} [{format(bounds[0], bound_fmt)}, {format(bounds[1], bound_fmt)}]"


def cell(row: str, headline: Mapping[str, Mapping]) -> str:
    """One run's cell of column ``row``: '-' where the run has no such row."""
    fields = headline.get(row)
    if not fields:
        return "-"
    if row == "choice":
        best = headline.get("choice_validation_best", {}).get("value")
        return fields["value"] if best in (None, fields["value"]) else f"{best} -> {fields['value']}"
    if "gain" in fields:
        return f"{interval(fields, 'gain', '+.3f')} {verdict_text(fields)}"
    if row == "rotation_spread":
        return format(fields["value"], ".1%")
    if row == "morphology_rmse":
        return format(fields["value"], ".4f")
    return interval(fields, "value", ".3f") if isinstance(fields["value"], float) else str(fields["value"])


def minutes(wall_seconds: float | None) -> str:
    """A wall time as '12.3 min'; '-' when unknown."""
    return "-" if wall_seconds is None else f"{wall_seconds / 60:.1f} min"


def params_text(changed: Mapping[str, Mapping]) -> str:
    """The params a run changed, as ``-S`` would set them; 'default' if none."""
    return ", ".join(f"`{key}={json.dumps(entry['value'])}`" for key, entry in changed.items()) or "default"


def expand(columns: Sequence[str], records: Sequence[Mapping]) -> list[str]:
    """``columns`` with each pattern (``vs_*``) replaced by the matching rows of any record, in row order."""
    rows = sorted({row for rec in records for row in rec["headline"]})
    out: list[str] = []
    for column in columns:
        matches = fnmatch.filter(rows, column) if any(c in column for c in "*?[") else [column]
        out += [m for m in matches if m not in out]
    return out


def table(records: Sequence[Mapping], columns: Sequence[str], link_prefix: str) -> list[str]:
    """Markdown lines: one row per record; ``link_prefix`` leads from the page to records/."""
    shown = expand(columns, records)
    lines = [
        f"| run | params | {' | '.join(label(c) for c in shown)} | wall time |",
        "|---|---|" + "---|" * len(shown) + "---:|",
    ]
    for rec in records:
        cells = [cell(c, rec["headline"]) for c in shown]
        link = f"[{rec['name']}]({link_prefix}{rec['name']}.json)"
        lines.append(f"| {link} | {params_text(rec['params_changed'])} | {' | '.join(cells)} | {minutes(rec.get('wall_seconds'))} |")
    return lines


def options(text: str) -> dict[str, list[str]]:
    """A start marker's ``key=a,b`` options: {"runs": [...], "columns": [...]}."""
    found = dict(re.findall(r"(\w+)=(\S+)", text))
    unknown = found.keys() - {"runs", "columns"}
    if unknown or "runs" not in found:
        raise ValueError(f"runs-table marker {text.strip()!r}: expected runs=a,b[ columns=x,y]")
    return {key: value.split(",") for key, value in found.items()}


def read_records(names: Sequence[str], folder: Path = RECORDS) -> list[dict]:
    """The records of ``names``; ValueError naming every run that has none."""
    missing = [name for name in names if not (folder / f"{name}.json").is_file()]
    if missing:
        raise ValueError(f"no record for {', '.join(missing)} in {folder} (python -m tools.record_experiment)")
    return [json.loads((folder / f"{name}.json").read_text(encoding="utf-8")) for name in names]


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
