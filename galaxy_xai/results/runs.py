"""Tables of recorded runs (``records/NAME.json``, written by ``python -m tools.record_experiment``).

A record holds one run's command, changed params, machine, wall time and headline rows
(:mod:`galaxy_xai.results.headline`). :func:`table` renders records as one Markdown table, a row per
run and a column per headline row; ``tools/run_tables`` writes such tables into README.md and docs/,
and the report shows the runs of the default configuration with other training seeds
(:func:`seed_records`) and the runs of other recipes (:func:`lever_records`).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_COLUMNS = ("morphology_rmse", "choice", "spearman_truth", "vs_*", "rotation_spread")
"""The columns of a table whose marker names none."""

JUST = 0.02
"""A verdict whose interval clears 0 by less than this reads "just beats" / "just loses" (issue #27)."""

LABELS = {
    "morphology_rmse": "ensemble test RMSE", "morphology_bar_auc": "bar ROC AUC", "choice": "validation's choice",
    "paper_rho": "rho (paper convention)", "spearman_truth": "Spearman vs truth",
    "spearman_catalogue": "Spearman vs catalogue", "k_models_asymptote": "infinitely many models",
    "rotation_spread": "rotation spread", "vs_image": "vs image-only", "vs_control_cnn": "vs control CNN",
    "vs_fourier_light": "vs Fourier of the light", "vs_commit_run": "vs the default (paired)",
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
    """The params a run changed, as ``-S`` would set them; 'default' if none. A section the run added
    whole (every key under it new, e.g. another model) is named once: 'new `models.vgg_small_1` (6 keys)';
    one it removed whole (every key under it gone), likewise: 'no `models.resnet_small`'."""
    parents: dict[str, list[str]] = {}
    for key in changed:
        parents.setdefault(key.rpartition(".")[0], []).append(key)

    def whole(side: str) -> set[str]:
        return {
            parent for parent, keys in parents.items()
            if parent and len(keys) > 1 and all(changed[k][side] is None for k in keys)
        }  # fmt: skip

    added, removed = whole("default"), whole("value")
    parts, named = [], set()
    for key, entry in changed.items():
        parent = key.rpartition(".")[0]
        if parent in added | removed:
            if parent not in named:
                named.add(parent)
                parts.append(f"new `{parent}` ({len(parents[parent])} keys)" if parent in added else f"no `{parent}`")
        else:
            parts.append(f"`{key}={json.dumps(entry['value'])}`")
    return ", ".join(parts) or "default"


def rows_of(rec: Mapping) -> dict[str, Mapping]:
    """A record's rows a table can show: its headline and, where it has one, ``vs_commit_run`` (the run
    minus the run committed at its commit, paired on the same galaxies: tools/record_experiment.py)."""
    paired = rec.get("vs_commit_run")
    return {**rec["headline"], **({"vs_commit_run": paired} if paired else {})}


def expand(columns: Sequence[str], records: Sequence[Mapping]) -> list[str]:
    """``columns`` with each pattern (``vs_*``) replaced by the matching rows of any record, in row order."""
    rows = sorted({row for rec in records for row in rows_of(rec)})
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
        cells = [cell(c, rows_of(rec)) for c in shown]
        link = f"[{rec['name']}]({link_prefix}{rec['name']}.json)"
        lines.append(f"| {link} | {params_text(rec['params_changed'])} | {' | '.join(cells)} | {minutes(rec.get('wall_seconds'))} |")
    return lines


def read_records(names: Sequence[str], folder: Path) -> list[dict]:
    """The records of ``names``; ValueError naming every run that has none."""
    missing = [name for name in names if not (folder / f"{name}.json").is_file()]
    if missing:
        raise ValueError(f"no record for {', '.join(missing)} in {folder} (python -m tools.record_experiment)")
    return [json.loads((folder / f"{name}.json").read_text(encoding="utf-8")) for name in names]


SEED_PARAMS = frozenset({"train.seed"})
"""The params a run may change and still count as the default configuration on another training seed."""


def _all_records(folder: str | Path) -> list[dict]:
    """Every record in ``folder``, by file name; [] if the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]


def _is_seed_run(rec: Mapping) -> bool:
    return set(rec.get("params_changed", {})) <= SEED_PARAMS


def seed_records(folder: str | Path) -> list[dict]:
    """The records in ``folder`` of the default configuration: the run with no changed param first,
    then the runs that changed only :data:`SEED_PARAMS`, by seed; [] if the folder does not exist."""
    seeds = [rec for rec in _all_records(folder) if _is_seed_run(rec)]
    return sorted(seeds, key=lambda rec: [entry["value"] for entry in rec["params_changed"].values()])


def headline_value(rec: Mapping, row: str) -> float | None:
    """A record's headline ``row`` value; None if the run has no such row (or no value in it)."""
    return rec["headline"].get(row, {}).get("value")


def lever_records(folder: str | Path, score: str = "spearman_truth") -> list[dict]:
    """The records in ``folder`` that change the default's params beyond :data:`SEED_PARAMS` (the
    levers and cuts tried), best headline ``score`` first (records without it last, by name)."""
    levers = [rec for rec in _all_records(folder) if not _is_seed_run(rec)]
    values = [headline_value(rec, score) for rec in levers]
    order = sorted(range(len(levers)), key=lambda i: (values[i] is None, -(values[i] or 0.0)))
    return [levers[i] for i in order]
