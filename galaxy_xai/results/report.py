"""report.md: this run's story, tables and headline numbers beside the paper's, as Markdown.

:func:`report_markdown` takes the run's metrics (:class:`RunMetrics`, read from the metrics folder by
:meth:`RunMetrics.read`), the saliency-vs-control-CNN comparison (:func:`galaxy_xai.results.comparison.control_comparisons`),
the explainer's name and, where known, the catalogue's own scores against the truth
(:func:`galaxy_xai.results.comparison.catalogue_benchmark`), and joins one small function per section, each
returning Markdown lines: :func:`summary_section` (what was run and found, in plain bullets: the
headline score, the twins, the image-only and control-CNN controls, the fraction of the
floor-to-ceiling gap closed, the gate), :func:`definitions_section` (rho, Spearman, truth, the
catalogue's noise model, twins, gate, verdicts, why one number carries several intervals), Tables 1
and 2 (with the gate and the one-standard-error preference rule), the headline table, the saliency
method vs each control (control CNN, image-only, isophote, Fourier-of-light, the twins, the
segmentation U-Net: ``barlengths.json``'s ``controls``) with the issue's Spearman-vs-truth target,
the absolute accuracy of every length (:func:`accuracy_table`), every estimator's test rho, what
each length adds to the isophote length, the ensemble curve, rotation stability and the captioned
figures (:func:`figures_section`). A section whose metrics are absent (real data, an older run) is
left out. The helpers format scores, intervals, settings and paired differences; nothing here
computes a score but the gap fraction of runs older than the measure stage's ``gap_closed``
(:func:`gap_fraction`), a ratio of reported scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from galaxy_xai.io import read_json
from galaxy_xai.results import paper, runs
from galaxy_xai.results.formatting import number, percent_interval, with_interval

SPEARMAN_TRUTH_TARGET = {"target": 0.70, "floor": 0.65}
"""Issue #13's target for the Spearman rho of the saliency lengths against the true length (image units)."""


VERDICT_WORDS = {"beats": "beats", "ties": "ties with", "loses": "loses to"}
"""How a sentence says evaluation.verdict's outcome of saliency minus control."""


def comparison_sentence(convention: str, label: str, shared: dict, key: str) -> str:
    """One sentence, one convention: both scores with their intervals and the paired verdict."""
    sal, con, diff = shared["saliency"], shared["control"], shared["difference"][key]
    lo, hi = (number(b, "+.2f") for b in diff["ci95"])
    difference = number(diff["difference"], "+.3f")
    because = {"ties": "contains 0", "beats": "lies above 0", "loses": "lies below 0"}[diff["verdict"]]
    return (
        f"{convention}, the saliency method **{VERDICT_WORDS[diff['verdict']]}** the control model on these "
        f"galaxies: {label} {with_interval(sal, key)} vs {with_interval(con, key)}, paired bootstrap difference "
        f"{difference} [{lo}, {hi}], an interval that {because}."
    )


SETTING_TEXT = (
    ("estimator", "estimator {}"), ("x_input", "X_input = {}"), ("mask", "mask {}"), ("corr_threshold", "T_c = {:g}"),
    ("len_threshold", "T_l = {:g}"), ("fraction", "fraction {:g}"), ("floor", "floor {:g}"),
)  # fmt: skip
"""How a grid-search setting's fields read in the report; a field absent or null (not applicable) is left out."""


def setting_text(setting: dict) -> str:
    """A grid-search setting as text, e.g. 'estimator algorithm1, X_input = False, mask r90, T_c = 0.5, T_l = 20'."""
    return ", ".join(
        template.format(setting[key]) for key, template in SETTING_TEXT
        if setting.get(key) is not None and setting[key] == setting[key]
    )  # fmt: skip


def paired_text(diff: dict | None) -> tuple[str, str]:
    """A paired difference {difference, ci95, verdict} as ('+0.123 [-0.05, +0.29]', 'ties with'); n/a if absent."""
    if not diff or diff.get("difference") is None:
        return "n/a", "n/a"
    lo, hi = (number(b, "+.2f") for b in (diff.get("ci95") or [None, None]))
    word = VERDICT_WORDS.get(diff.get("verdict"), "n/a")
    return f"{diff['difference']:+.3f} [{lo}, {hi}]", f"**{word}**" if word == "beats" else word


def preference_sentence(chosen: dict) -> str:
    """How the grid search's preference rule decided (``chosen['preference']``), or '' if the best
    setting was a preferred one."""
    preference = chosen.get("preference")
    if not preference:
        return ""
    best, kept = preference["best"], preference["kept_preferred"]
    difference, verdict = paired_text(preference["best_minus_preferred"])
    prefer = ", ".join(str(v) for v in preference["prefer"].values())
    outcome = (
        "so the preferred setting is kept: validation cannot tell them apart"
        if kept
        else "by more than the noise, so it is chosen"
    )
    return (
        f"Preference rule: the best validation score is {best['map_source']} ({setting_text(best)}); it {verdict} "
        f"the best setting of the preferred {prefer} ({difference} in rho_image, paired bootstrap on the "
        f"validation galaxies), {outcome}."
    )


def paired_entry(entry: dict, score: str) -> dict | None:
    """The saliency method minus a control in ``score`` from a metrics entry: ``entry['difference'][score]``
    (the layout of :func:`shared_comparison`), or flat ``<score>_difference`` (a number, with
    ``<score>_difference_ci95`` and ``<score>_verdict``, or such a dict); None if absent."""
    nested = entry.get("difference")
    if isinstance(nested, dict) and isinstance(nested.get(score), dict):
        return nested[score]
    flat = entry.get(f"{score}_difference")
    if isinstance(flat, dict) or flat is None:
        return flat
    return {"difference": flat, "ci95": entry.get(f"{score}_difference_ci95"), "verdict": entry.get(f"{score}_verdict")}


CONTROL_LABELS = {
    "image": "image-only length (same estimators on the grey input or its non-axisymmetric residual)",
    "image_only": "image-only length (same estimators on the grey input)",
    "isophote": "isophote fit: radius of maximum ellipticity",
    "fourier_light": "Fourier m=2 profile of the light",
    "fourier_of_light": "Fourier m=2 profile of the light",
    "random_weights": "the same explainer on the models with every learnt layer re-initialised (random-weights twins)",
    "permuted_labels": "the same explainer on twins trained on vote fractions permuted across galaxies",
    "segmentation": "a U-Net trained on the true bar masks (supervised segmentation: the supervised ceiling of a segmenter)",
}
"""How the report names the classical and image-only controls of ``barlengths.json``'s ``controls``."""

COMPARED_SCORES = (("rho_image", "rho_image vs catalogue"), ("spearman_truth_image", "Spearman vs truth"))
"""The scores of the controls table: each control's value and the saliency method's paired difference."""


def control_entries(controls) -> list[tuple[str, dict]]:
    """(label, entry) of ``barlengths.json``'s ``controls``: a mapping name -> entry, or a list of entries
    naming themselves by ``name``, ``control`` or ``source``; [] when absent (an older measure stage)."""
    if isinstance(controls, dict):
        items = [(name, entry) for name, entry in controls.items() if isinstance(entry, dict)]
    elif isinstance(controls, list):
        items = [(e.get("name") or e.get("control") or e.get("source") or "?", e) for e in controls if isinstance(e, dict)]
    else:
        items = []
    return [
        (CONTROL_LABELS.get(str(name), str(name)) + (f" ({setting_text(e['setting'])})" if isinstance(e.get("setting"), dict) else ""), e)
        for name, e in items
    ]


def controls_table(bars: dict, shared: dict) -> list[str]:
    """Markdown rows: the saliency method vs each control on identical test galaxies (paired bootstrap)."""
    header = " | ".join(f"control {label} | saliency - control [95%] | verdict" for _, label in COMPARED_SCORES)
    lines = [
        f"| control | galaxies | {header} |",
        "|---|---:|" + "---:|---:|---|" * len(COMPARED_SCORES),
        f"| (the saliency method itself, every XAI test galaxy) | {bars.get('n', 'n/a')} | "
        + " | ".join(f"{with_interval(bars, key)} | - | -" for key, _ in COMPARED_SCORES) + " |",
    ]
    rows = []
    for label, comparison in (
        ("control CNN, cross-fit (every shared XAI test galaxy)", shared),
        ("control CNN, paper split (one model, its 20% test fold)", shared.get("paper_split") or {}),
    ):
        if comparison.get("control"):
            rows.append((label, comparison.get("n_shared"), comparison["control"], comparison))
    rows += [(label, entry.get("n"), entry, entry) for label, entry in control_entries(bars.get("controls"))]
    for label, n, scores, paired in rows:
        cells = []
        for key, _ in COMPARED_SCORES:
            cells += [with_interval(scores, key), *paired_text(paired_entry(paired, key))]
        lines.append(f"| {label} | {'n/a' if n is None else n} | {' | '.join(cells)} |")
    return lines


COMPLEMENT_SCORES = (("spearman_truth_image", "Spearman vs truth"), ("spearman_image", "Spearman vs catalogue"))
"""The scores of the complements table (:func:`complements_table`), truth first where known."""


def complements_table(complements: dict) -> list[str]:
    """Markdown: every rank-mean combination with the isophote length, then the paired differences
    (``comparison.json``'s ``complements``, :func:`galaxy_xai.results.comparison.complement_comparison`)."""
    scores = complements.get("scores") or {}
    keys = [(key, label) for key, label in COMPLEMENT_SCORES if any(key in v for v in scores.values())]
    if not keys:
        return []
    lines = [
        f"| lengths combined (rank mean) | {' | '.join(label for _, label in keys)} |",
        "|---|" + "---:|" * len(keys),
        *(f"| {name} | {' | '.join(with_interval(v, key) for key, _ in keys)} |" for name, v in scores.items()),
        "",
        f"| paired difference | {' | '.join(f'{label} [95%] | verdict' for _, label in keys)} |",
        "|---|" + "---:|---|" * len(keys),
    ]
    for name, diff in (complements.get("difference") or {}).items():
        cells = [cell for key, _ in keys for cell in paired_text(diff.get(key))]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def section(heading: str, text: str, table: list[str]) -> list[str]:
    """Markdown lines of a report section: the heading, a paragraph, the table, each followed by a blank line."""
    return [heading, "", text, "", *table, ""]


def ensemble_table(ensembles: dict) -> list[str]:
    """Markdown: the ensemble curve against each reference (``barlengths.json``'s ``ensemble``,
    :func:`galaxy_xai.results.ensemble.ensemble_curve`): Spearman rho of the mean of k models' lengths, then
    the Spearman-Brown predictions for twice the models and for infinitely many."""
    if not ensembles:
        return []
    first = next(iter(ensembles.values()))
    rows = [f"mean of {k} model{'s' if k > 1 else ''}" for k in first["k"]]
    lines = [
        f"| Spearman rho against | {' | '.join(rows)} | {first['doubled_k']} models (predicted) | infinitely many (predicted) |",
        "|---|" + "---:|" * (len(rows) + 2),
    ]
    for reference, curve in ensembles.items():
        cells = [with_interval({"r": r, "r_ci95": ci}, "r") for r, ci in zip(curve["spearman"], curve["spearman_ci95"], strict=True)]
        cells += [with_interval(curve, "doubled"), with_interval(curve, "asymptote")]
        lines.append(f"| {reference} | {' | '.join(cells)} |")
    return lines


VALIDATION_KEYS = ("val_rho_image", "validation_rho_image", "rho_image_val")
"""Where an ``estimators`` row of ``barlengths.json`` may keep its validation rho_image."""


def estimators_table(rows: list[dict]) -> list[str]:
    """Markdown rows: every map source x estimator's test scores with intervals, its setting chosen on validation."""
    lines = [
        "| map source | estimator | setting (chosen on validation) | validation rho_image | test rho_image "
        "| test Spearman (image units) | test Spearman vs truth |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        setting = setting_text({k: v for k, v in row.items() if k != "estimator"})
        val_key = next((k for k in VALIDATION_KEYS if k in row), VALIDATION_KEYS[0])
        lines.append(
            f"| {row.get('map_source', 'n/a')} | {row.get('estimator', 'n/a')} | {setting or '-'} "
            f"| {with_interval(row, val_key) if f'{val_key}_ci95' in row else number(row.get(val_key))} "
            f"| {with_interval(row, 'rho_image')} | {with_interval(row, 'spearman_image')} | {with_interval(row, 'spearman_truth_image')} |"
        )
    return lines


def target_sentence(bars: dict, shared: dict) -> str | None:
    """Issue #13's target line: the saliency lengths' Spearman against the true length vs 0.70 (None without truth)."""
    source = bars if bars.get("spearman_truth_image") is not None else shared.get("saliency") or {}
    value = source.get("spearman_truth_image")
    if value is None:
        return None
    target, floor = SPEARMAN_TRUTH_TARGET["target"], SPEARMAN_TRUTH_TARGET["floor"]
    outcome = (
        "meets the target" if value >= target
        else f"misses the target but meets the floor {floor:.2f}" if value >= floor
        else f"misses both the target and the floor {floor:.2f}"
    )  # fmt: skip
    return (
        f"Target: the Spearman rho of the saliency lengths against the true length (image units, test split) is "
        f"{with_interval(source, 'spearman_truth_image')} against the target {target:.2f}: it {outcome}."
    )


def optional_text(path: Path) -> str:
    """The text of a file a stage may leave out or empty (e.g. on real data): "" if it is absent."""
    return path.read_text() if path.is_file() else ""


@dataclass(frozen=True)
class RunMetrics:
    """The metrics files of one run that the report reads, each as its stage wrote it.

    ``table1``, ``table2``: the Markdown of ``table1.md`` (predict) and ``table2.md`` (gridsearch);
    ``morphology``: ``morphology.json`` (predict); ``gridsearch``: ``gridsearch.json`` (its
    ``chosen``, ``choice_stability``, ``linearity``, ``n``); ``barlengths``: ``barlengths.json``
    (measure); ``control``: ``control.json`` (control); ``rotation``: ``rotation.json`` (rotation);
    ``explainers``: the Markdown of ``explainers.md`` (explainers stage; "" if the file is absent);
    ``true_axis_md``: the Markdown of ``true_axis.md`` (true_axis stage; "" if absent or skipped on real
    data); ``true_axis``: ``true_axis.json`` ({} if absent).
    """

    table1: str
    table2: str
    morphology: Mapping
    gridsearch: Mapping
    barlengths: Mapping
    control: Mapping
    rotation: Mapping
    explainers: str = ""
    true_axis_md: str = ""
    true_axis: Mapping = field(default_factory=dict)

    @classmethod
    def read(cls, metrics_dir: str | Path) -> RunMetrics:
        """The files of ``metrics_dir`` (the pipeline's ``metrics/``)."""
        folder = Path(metrics_dir)

        expected = "a metrics file of the pipeline's stages (run dvc repro)"

        def metrics(name: str) -> dict:
            return read_json(folder / name, expected)

        def text(name: str) -> str:
            if not (folder / name).is_file():
                raise ValueError(f"{folder / name}: not found; expected {expected}")
            return (folder / name).read_text()

        return cls(
            text("table1.md"),
            text("table2.md"),
            *(metrics(f"{name}.json") for name in ("morphology", "gridsearch", "barlengths", "control", "rotation")),
            *(optional_text(folder / name) for name in ("explainers.md", "true_axis.md")),
            metrics("true_axis.json") if (folder / "true_axis.json").is_file() else {},
        )


def noise_sentence(rotation: Mapping) -> str:
    """What the unturned galaxies on several explainer draws say (``rotation.json``'s
    ``noise_relative_spread``): a sampling explainer's noise floor, or that the explainer is
    deterministic (no spread at all), so the whole spread is the rotation's."""
    noise, draws = rotation["noise_relative_spread"], len(rotation["angles_deg"])
    if all(value == 0 for value in noise.values()):
        return (f"Control: the unturned galaxies explained {draws} times give the same length every time (the explainer "
                "is deterministic: no sampling noise), so all of the spread above is the rotation's.")  # fmt: skip
    return (
        f"Control: the unturned galaxies on {draws} independent noise draws of the explainer "
        f"spread by {noise['abs_pearson']:.1%} (|Pearson r|) and {noise['elongation']:.1%} (elongation): "
        "the part of the spread the explainer's sampling noise gives with no rotation at all."
    )


def setup_sentence(run: RunMetrics, explainer: str, setup: Mapping) -> str:
    """What differs from the paper, read from the run: ``setup`` gives ``size_px`` (the models' input)
    and ``archs`` (their architectures); the galaxies are the morphology splits' and the bar
    catalogue's (``n_bars``), synthetic where the bars have true lengths."""
    n_galaxies = sum((run.morphology.get("n") or {}).values())
    sky = "synthetic" if run.barlengths.get("n_truth") else "real"
    n_bars = run.control.get("n_bars")
    return (
        f"What differs from the paper and why: this run's models ({', '.join(setup.get('archs') or ['n/a'])}) see "
        f"{setup.get('size_px', 'n/a')}-px inputs and learn from {n_galaxies:,} {sky} galaxies (the paper: ImageNet "
        f"backbones at 224 px on 61,578 real ones), the explainer is `{explainer}` (the paper: SmoothGrad, N = 256, "
        f"`abs_gradient`), and the bar catalogue holds {f'{n_bars:,}' if n_bars else 'n/a'} {sky} galaxies; `rho` in "
        "the paper's convention is inflated by the shared PETROR90_R factor (see `rho_null`), so `rho_image` is the "
        "honest score."
    )


def nest(markdown: str, levels: int = 1) -> str:
    """``markdown`` with every ATX heading ``levels`` deeper (:func:`demote_headings` repeated)."""
    for _ in range(levels):
        markdown = demote_headings(markdown)
    return markdown


def named_controls(bars: Mapping) -> dict[str, dict]:
    """``barlengths.json``'s ``controls`` as {name: entry}, a mapping or a list naming itself (:func:`control_entries`)."""
    controls = bars.get("controls")
    if isinstance(controls, dict):
        return {str(k): v for k, v in controls.items() if isinstance(v, dict)}
    if isinstance(controls, list):
        return {str(e.get("name") or e.get("control") or e.get("source") or "?"): e for e in controls if isinstance(e, dict)}
    return {}


def summary_score(bars: Mapping) -> tuple[str, str]:
    """(key, words) of the score the summary speaks of: the Spearman rho against the true length where
    this run has one (synthetic sky), else rho_image against the catalogue (the controls' paired score)."""
    if bars.get("spearman_truth_image") is not None:
        return "spearman_truth_image", "Spearman rho against the true lengths"
    return "rho_image", "Pearson rho_image against the catalogue"


def gap_fraction(bars: Mapping, key: str) -> float | None:
    """(S - S_random) / (S_segmentation - S_random) in ``key``: the fraction of the gap between the
    random-weights twins (floor) and the segmentation U-Net (ceiling) that the saliency lengths close;
    None without both controls, or when the ceiling does not lie above the floor."""
    controls = named_controls(bars)
    s, floor = bars.get(key), (controls.get("random_weights") or {}).get(key)
    ceiling = (controls.get("segmentation") or {}).get(key)
    if s is None or floor is None or ceiling is None or ceiling <= floor:
        return None
    return (s - floor) / (ceiling - floor)


def gate_sentence(gate: Mapping | None) -> str:
    """The grid search's gate (``gridsearch.json``'s ``chosen['gate']``) in words; '' if absent."""
    if not gate or gate.get("of") is None:
        return ""
    twins = " and ".join(f"the {kind.replace('_', '-')} twins" for kind in gate.get("twins") or [])
    if not twins:
        return f"No gate: all {gate['of']} saliency settings were candidates."
    if not gate.get("passed"):
        return (f"Gate: none of the {gate['of']} saliency settings beat {twins} on validation, so the choice was made "
                "among all of them and its lengths are not shown to be the models'.")  # fmt: skip
    return (f"Gate: {gate['passed']} of {gate['of']} saliency settings beat {twins} on validation (paired bootstrap "
            "95% interval of the difference in rho_image above 0); only those were candidates.")  # fmt: skip


PLURAL_VERDICT = {"beats": "**beat**", "ties": "tie with", "loses": "lose to"}
"""How a summary bullet says evaluation.verdict's outcome with 'the saliency lengths' as subject."""


def _versus(name: str, diff: Mapping | None) -> str | None:
    """'minus <name> +0.123 [+0.01, +0.20] (the saliency lengths **beat** them)', None without a difference."""
    text, _ = paired_text(diff)
    if text == "n/a":
        return None
    return f"minus {name} {text} (the saliency lengths {PLURAL_VERDICT.get(diff.get('verdict'), 'n/a')} them)"


def summary_section(run: RunMetrics, shared: Mapping, explainer: str, setup: Mapping | None = None) -> list[str]:
    """4-7 plain bullets of what was run and found, each number from the metrics (:func:`summary_score`)."""
    bars, grid, setup = run.barlengths, run.gridsearch, setup or {}
    key, words = summary_score(bars)
    controls = named_controls(bars)
    members = next(iter((bars.get("ensemble") or {}).values()), {}).get("members") or setup.get("archs") or []
    n_galaxies = sum((run.morphology.get("n") or {}).values())
    sky = "synthetic" if bars.get("n_truth") else "real"
    chosen = grid.get("chosen") or {}
    bullets = [
        f"What was run: `{explainer}` saliency maps of {len(members) or 'the'} morphology CNNs"
        + (f" ({', '.join(members)})" if members else "") + (f" trained on {n_galaxies:,} {sky} galaxies" if n_galaxies else "")
        + f"; the bar isolated in each map and measured on {bars.get('n', 'n/a')} test galaxies of the bar catalogue, "
        f"with the setting chosen on {grid.get('n', 'n/a')} validation galaxies ({chosen.get('map_source', 'n/a')}, "
        f"{setting_text(chosen) or 'n/a'}).",
        f"Headline: the saliency lengths' {words} is {with_interval(bars, key)} (95% bootstrap interval)"
        + (f"; the target {SPEARMAN_TRUTH_TARGET['target']:.2f} is {'met' if bars[key] >= SPEARMAN_TRUTH_TARGET['target'] else 'not met'}."
           if key == "spearman_truth_image" else "."),
    ]  # fmt: skip
    twins = [_versus(f"the {name.replace('_', '-')} twins", paired_entry(controls[name], key))
             for name in ("random_weights", "permuted_labels") if name in controls]  # fmt: skip
    if any(twins):
        bullets.append("Same explainer, models that learnt nothing: trained " + "; trained ".join(t for t in twins if t) + ".")
    baselines = [
        _versus("the image-only length (no model)", paired_entry(controls.get("image") or {}, key)),
        _versus("the control CNN trained on the catalogue lengths", (shared.get("difference") or {}).get(key)),
    ]
    if any(baselines):
        bullets.append("Controls: saliency " + "; saliency ".join(b for b in baselines if b) + ".")
    fraction = gap_fraction(bars, key)
    if fraction is not None:
        floor, ceiling = controls["random_weights"][key], controls["segmentation"][key]
        # The measure stage's joint bootstrap (evaluation.gap_closed) gives the interval; older runs have none.
        measured = key == "spearman_truth_image" and bars.get("gap_closed") is not None
        how = (f"{percent_interval(bars, 'gap_closed')} of the gap (95% interval: the three lengths resampled jointly)"
               if measured else f"{fraction:.0%} of the gap: a point estimate (the three scores were not resampled jointly, so no interval)")  # fmt: skip
        bullets.append(
            f"Between the floor (random-weights twins, {floor:.3f}) and the supervised ceiling (a U-Net trained on the true bar "
            f"masks, {ceiling:.3f}) the explanation closes ({bars[key]:.3f} - {floor:.3f}) / ({ceiling:.3f} - {floor:.3f}) "
            f"= {how}."
        )
    else:
        bullets.append("Fraction of the gap between the random-weights twins and the segmentation U-Net that the "
                       "explanation closes: not available in this run (it needs both controls, the ceiling above the floor).")  # fmt: skip
    gate = gate_sentence(chosen.get("gate"))
    if gate:
        bullets.append(gate)
    return ["## Summary", "", *(f"- {b}" for b in bullets), ""]


def definitions_section(benchmark: Mapping | None = None) -> list[str]:
    """The report's words and scores defined; ``benchmark``: the catalogue's own scores against the
    truth on the test galaxies (:func:`galaxy_xai.results.comparison.catalogue_benchmark`), where known."""
    catalogue = (
        "**catalogue**: on real data, the human bar lengths of Hoyle et al. (2011); on the synthetic sky, a "
        "Hoyle-format catalogue drawn from the truth: each galaxy's true length times one log-normal factor "
        "exp(0.17 z), z ~ N(0, 1) (the volunteers' ~17% reproducibility), unbiased in the median."
    )
    if benchmark and benchmark.get("spearman_image") is not None:
        catalogue += (
            f" On the {benchmark.get('n', 'n/a')} test galaxies the catalogue itself scores Spearman "
            f"{with_interval(benchmark, 'spearman_image')} and rho_image {with_interval(benchmark, 'rho_image')} against the "
            f"truth, and lies within 20% of it for {percent_interval(benchmark, 'within_20pct_truth')} of them: scores against "
            "the catalogue are capped by this noise."
        )
    items = [
        "**rho**: the Pearson correlation of measured and reference lengths. `rho` (the paper's convention) multiplies "
        "both by the galaxy's PETROR90_R, a factor they share, which inflates it (see `rho_null`); `rho_image` is in "
        "image units (424-px pixels), with no shared factor. **Spearman**: the rank correlation (Pearson of the ranks).",
        "**truth**: the synthetic sky's true bar lengths (the rendered bar's projected full length); real data have none.",
        catalogue,
        "**twins**: the same explainer and setting on each model with every learnt layer re-initialised "
        "(`random_weights`), or trained on vote fractions permuted across galaxies (`permuted_labels`): the lengths "
        "a network that learnt nothing about bars gives. **segmentation**: a U-Net trained on the true bar masks, the supervised "
        "ceiling (not a ceiling of what the images hold: along the true bar axis the light alone ranks the lengths better).",
        "**gate**: a grid-search setting is a candidate only if its validation lengths beat those of the twins named "
        "in `xai.grid.gate` (by default the random-weights twins) in rho_image (paired bootstrap 95% interval above 0).",
        "**beats / ties with / loses to**: the 95% interval of the paired bootstrap difference (saliency minus the "
        "other, both on the same resamples of the same galaxies) lies above 0 / contains 0 / lies below 0.",
        "**Why one number has several intervals**: each stage and table draws its own bootstrap resamples (the measure "
        "stage for the headline, controls and estimators tables and the ensemble curve, the figure stage for the "
        "comparison with the control CNN), so the percentile bounds of the same score differ by Monte Carlo noise of "
        "about 0.01; the paper-split rows have fewer galaxies and wider intervals; a paired difference's interval is "
        "that of the difference, narrower than the two scores' intervals suggest, since errors shared on a galaxy cancel.",
    ]
    return ["## Definitions", "", *(f"- {item}" for item in items), ""]


ACCURACY_COLUMNS = (
    ("median_abs_rel_error", "median abs(L - L_{ref}) / L_{ref}"), ("within_20pct", "fraction within 20% of L_{ref}"),
    ("median_ratio", "median L / L_{ref}"),
)  # fmt: skip
"""The columns of the accuracy table: each key of :data:`galaxy_xai.statistics.ACCURACY_SCORES` and its title."""


def accuracy_table(bars: Mapping, control: Mapping | None = None, benchmark: Mapping | None = None) -> list[str]:
    """Markdown: the absolute accuracy of the saliency lengths, each control of ``bars['controls']``, the
    control CNN (``control``) and the catalogue itself (``benchmark``), against the truth where any row
    has it, else against the catalogue; [] if no row has either."""
    rows = [("saliency method", bars), *control_entries(bars.get("controls"))]
    if control:
        rows.append(("control CNN, cross-fit", control))
    if benchmark:
        rows.append(("the catalogue itself (volunteers' noise)", benchmark))
    known = [(ref, label) for ref, label in (("truth", "true"), ("catalogue", "cat"))
             if any(scores.get(f"median_abs_rel_error_{ref}") is not None for _, scores in rows)]  # fmt: skip
    if not known:
        return []
    reference, label = known[0]
    columns = [(f"{key}_{reference}", title.replace("{ref}", label)) for key, title in ACCURACY_COLUMNS]
    lines = [f"| lengths | galaxies | {' | '.join(f'{title} [95%]' for _, title in columns)} |", "|---|---:|" + "---:|" * len(columns)]
    for name, scores in rows:
        if any(scores.get(key) is not None for key, _ in columns):
            lines.append(f"| {name} | {scores.get('n', 'n/a')} | {' | '.join(with_interval(scores, key) for key, _ in columns)} |")
    return lines


FIGURE_CAPTIONS = (
    ("fig1_saliency_maps", "Figure 1: a test galaxy (the longest catalogue bar) and its saliency maps for the bar, "
     "bulge and arms answers, averaged over the models; the measured answer's panel (`xai.target`) is the stored map "
     "that was measured, the others are recomputed with the same explainer."),
    ("fig2_learning_curves", "Figure 2: training (solid) and validation (dashed) RMSE of the vote fractions per epoch, one curve per model."),
    ("fig3_isolated_bars", "Figure 3: two random test galaxies and the worst outlier: image, map as measured, and the "
     "isolated bar with its measured length (red) and, on the synthetic sky, the true bar's outline."),
    ("fig4_measured_vs_catalogue", "Figure 4: measured against catalogue bar lengths (h^-1 kpc) for the saliency method "
     "and the control CNN, with the 1:1 line and a weighted fit through the origin."),
    ("fig5_disagreements", "Figure 5: the two test galaxies where the ensemble's smooth-vs-features answer is farthest "
     "from the volunteers', with the maps of both answers."),
    ("gridsearch", "The grid search at a glance: validation rho_image of Algorithm 1 over T_c x T_l, one panel per map "
     "source, X_input and mask."),
    ("measured_vs_true", "Measured against true bar lengths (synthetic sky) for the saliency method and the control CNN, "
     "each titled with its Spearman rho and interval."),
    ("complements", "What each length adds to the isophote length: every rank-mean combination's score and each paired "
     "difference with its 95% interval against 0."),
    ("ensemble", "The Spearman rho of the mean length of k models against k, with the Spearman-Brown extrapolation, "
     "the controls' scores as horizontal lines and the 0.70 target."),
)  # fmt: skip
"""Each PNG of ``plots/figures/`` (the figure stage) and its one-sentence caption."""


def figures_section(bars: Mapping, shared: Mapping) -> list[str]:
    """Markdown image links to ``plots/figures/`` with captions; the figures the stage draws only
    when their data exist (truth, complements, ensemble) are listed only then."""
    drawn = {"measured_vs_true": bool(bars.get("n_truth")), "complements": bool((shared.get("complements") or {}).get("scores")),
             "ensemble": bool(bars.get("ensemble"))}  # fmt: skip
    lines = ["## Figures", ""]
    for name, caption in FIGURE_CAPTIONS:
        if drawn.get(name, True):
            lines += [f"![{name}](plots/figures/{name}.png)", "", f"*{caption}*", ""]
    return lines


def table1_section(run: RunMetrics) -> list[str]:
    morph = run.morphology
    auc = morph.get("bar_auc")
    return [
        "## Table 1: morphology models (RMSE of the 37 vote fractions)", "", nest(run.table1.strip(), 2), "",
        f"Ensemble test RMSE / training-mean baseline: {morph['test_rmse_over_mean_baseline']['ensemble']:.3f}. "
        + (f"Bar ROC AUC of the ensemble's Class3.1 on true barred vs unbarred disks: {auc:.3f}." if auc is not None else ""),
        "",
    ]  # fmt: skip


ONE_SE_RULE = (
    "The preference rule is a one-standard-error rule: the best validation rho_image replaces the best of the preferred "
    "rows (the models' mean length, Algorithm 1) only if it beats it by a paired bootstrap 95% interval above 0, since "
    "the validation galaxies cannot tell apart settings a few hundredths apart."
)


def table2_section(run: RunMetrics) -> list[str]:
    grid = run.gridsearch
    chosen, stability = grid["chosen"], grid["choice_stability"]
    kept_preferred = bool((chosen.get("preference") or {}).get("kept_preferred"))
    alternatives = "; ".join(f"{a['map_source']} ({setting_text(a)}) {a['frequency']:.0%}" for a in stability["alternatives"])
    how = " ".join(s for s in (gate_sentence(chosen.get("gate")), ONE_SE_RULE) if s)
    return [
        "## Table 2: grid search on the validation split", "", nest(run.table2.strip(), 2), "",
        f"Chosen: **{chosen['map_source']}**, {setting_text(chosen)}"
        + (f" (T_l in 224-px units; {chosen['len_threshold_px']} px here)" if chosen.get("len_threshold_px") is not None else "")
        + f", linearity = {grid['linearity']}. The search ranks by rho in image units (no shared PETROR90_R factor); "
        f"this setting's validation rho_image is {with_interval(chosen, 'rho_image')} (95% bootstrap interval).",
        "", how, "",
        (f"{preference_sentence(chosen)} " if chosen.get("preference") else "") + f"Choice stability{' among the preferred rows' if kept_preferred else ''}: on {stability['resamples']} "
        f"bootstrap resamples of the {grid['n']} validation galaxies, "
        f"the search picks {stability['map_source']} again in {stability['map_source_frequency']:.0%} of them and this exact "
        f"setting in {stability['setting_frequency']:.0%}. Most frequent alternatives: {alternatives or 'none'}.",
        "",
    ]  # fmt: skip


def headline_rows(bars: Mapping, control: Mapping) -> list[str]:
    """The headline table: the saliency method's and the control CNN's scores beside the paper's."""
    ci, split = with_interval, control.get("paper_split", {})
    return [
        "| quantity | this run | paper |",
        "|---|---:|---:|",
        f"| saliency method rho (paper convention, x PETROR90_R) | {ci(bars, 'rho')} | {paper.SALIENCY_RHO} |",
        f"| saliency method rho in image units | {ci(bars, 'rho_image')} | not reported |",
        f"| saliency method Spearman (paper convention) | {ci(bars, 'spearman')} | - |",
        f"| saliency method Spearman in image units | {ci(bars, 'spearman_image')} | - |",
        f"| rho that the shared PETROR90_R factor alone gives (permutation null: mean / 95th percentile) | {number(bars.get('rho_null'))} / {number(bars.get('rho_null_p95'))} | not reported |",
        f"| permutation p-value of rho / of rho_image | {number(bars.get('rho_p_value'))} / {number(bars.get('rho_image_p_value'))} | - |",
        f"| saliency method rho against the true length (synthetic) | {ci(bars, 'rho_truth')} | - |",
        f"| saliency method rho_image against the true length (synthetic) | {ci(bars, 'rho_truth_image')} | - |",
        f"| saliency method Spearman against the true length, image units (synthetic; target {SPEARMAN_TRUTH_TARGET['target']:.2f}) "
        f"| {ci(bars, 'spearman_truth_image')} | - |",
        f"| slope measured / catalogue (kpc, through the origin) | {number(bars.get('slope'))} +- {number(bars.get('slope_err'))} | - |",
        f"| control CNN rho (paper convention), cross-fit | {ci(control, 'rho')} | not done |",
        f"| control CNN rho in image units, cross-fit | {ci(control, 'rho_image')} | not reported |",
        f"| control CNN rho_image against the true length (synthetic), cross-fit | {ci(control, 'rho_truth_image')} | - |",
        f"| control CNN rho (paper convention), paper split | {ci(split, 'rho')} | {paper.CONTROL_RHO} |",
        f"| control CNN rho in image units, paper split | {ci(split, 'rho_image')} | not reported |",
        f"| galaxies (saliency test / control cross-fit / control paper split) | {bars['n']} / {control['n']} / "
        f"{split.get('n', 'n/a')} | 2100 / - / 630 |",
    ]  # fmt: skip


def headline_section(bars: Mapping, control: Mapping, shared: Mapping) -> list[str]:
    """The headline table, how its intervals were drawn, and the saliency method vs the control CNN on shared galaxies."""
    paper_shared = shared.get("paper_split", {})
    lines = [
        "## Headline: bar lengths on the test split", "", *headline_rows(bars, control), "",
        f"Brackets: 95% percentile bootstrap intervals over {bars['resamples']} resamples of the galaxies "
        "(in the paper's convention each galaxy keeps its PETROR90_R factor). The control CNN is cross-fitted "
        f"over {control.get('folds', 'k')} folds of the bar catalogue: every galaxy is predicted by a model that "
        "did not train on it, so it is measured on every XAI test galaxy; the paper split is fold 0's model alone "
        "(the paper's 64/16/20 split), scored on its 20% test fold.",
        "",
        f"On the {shared.get('n_shared', 0)} XAI test galaxies both methods measured (control cross-fitted), and on the "
        f"{paper_shared.get('n_shared', 0)} of them in the paper split's test fold:",
        "",
        "| method | galaxies | rho | rho_image | rho_image vs truth | Spearman vs truth |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for label, comparison in (("", shared), (", paper split", paper_shared)):
        for method, name in (("saliency", "saliency"), ("control", "control CNN")):
            scores = comparison.get(method, {})
            lines.append(
                f"| {name}{label} | {comparison.get('n_shared', 0)} | {with_interval(scores, 'rho')} | {with_interval(scores, 'rho_image')} "
                f"| {with_interval(scores, 'rho_truth_image')} | {with_interval(scores, 'spearman_truth_image')} |"
            )
    lines.append("")
    if shared.get("saliency") and shared.get("control"):
        # One sentence per convention: the paper's rho and rho in image units answer different questions.
        sentences = [
            comparison_sentence("In the paper's convention (both lengths x PETROR90_R)", "rho", shared, "rho")
            + f" The paper reports {paper.SALIENCY_RHO} vs {paper.CONTROL_RHO} in this convention.",
            comparison_sentence("In image units", "rho_image", shared, "rho_image"),
        ]
        if "rho_truth_image" in shared["difference"]:
            sentences.append(
                comparison_sentence("Against the true lengths (synthetic sky, image units)", "rho_image", shared, "rho_truth_image")
            )
        sentences.append(
            f"A method \"beats\" the other only when the 95% interval of the paired difference ({shared['resamples']} "
            "resamples of the shared galaxies, both methods on the same resamples) excludes 0."
        )
        lines += [line for sentence in sentences for line in (sentence, "")]
    return lines


def controls_section(run: RunMetrics, shared: Mapping, benchmark: Mapping | None = None) -> list[str]:
    """The saliency method vs each control (paired), the target line, and the absolute accuracy of every length."""
    bars = run.barlengths
    lines = section(
        "## The saliency method vs each control",
        "Each control measured on the same test galaxies as the saliency method; the difference is the saliency "
        "method's score minus the control's, from a paired bootstrap (both on the same resamples of the galaxies); "
        "the verdict reads \"the saliency method beats / ties with / loses to the control\", and says beats only "
        "when the 95% interval excludes 0.",
        controls_table(bars, shared),
    )
    target = target_sentence(bars, shared)
    if target:
        lines += [target, ""]
    accuracy = accuracy_table(bars, run.control, benchmark)
    if accuracy:
        lines += section(
            "## Absolute accuracy: do the lengths run long?",
            "A correlation cannot see a length that runs 20% long. For every length: the median of abs(L - L_ref) / "
            "L_ref, the fraction of galaxies within 20% of the reference (Hoyle et al. 2011's observers agree to "
            "better than 20%) and the median ratio L / L_ref (1: no overall bias), against the true length where "
            "known, else the catalogue; 95% bootstrap intervals over the galaxies.",
            accuracy,
        )
    return lines


def extras_section(bars: Mapping, shared: Mapping) -> list[str]:
    """Every estimator's test rho, the complements of the isophote length and the ensemble curve, each where present."""
    lines: list[str] = []
    if bars.get("estimators"):
        lines += section(
            "## Every estimator's test rho",
            "Each source (saliency maps, the grey input) x estimator at its best setting on the validation split, "
            "scored once on the test split:",
            estimators_table(bars["estimators"]),
        )
    complements = complements_table(shared.get("complements") or {})
    if complements:
        lines += section(
            "## What each length adds to the classical isophote length",
            f"On the {shared['complements']['n']} test galaxies every method measured, the isophote length alone and "
            "combined with the other lengths by the mean of their ranks (no weights, no choice, no label): a "
            "combination beats its members only where their errors differ, so \"isophote+control+saliency - "
            "isophote+control\" asks whether the explanation knows something about the bar that neither the "
            "classical fit nor the supervised CNN does, and \"... - isophote+control+image\" whether it knows "
            "more than the image-only length (the same estimator with no model) adds. Paired bootstrap on the "
            "same galaxies; \"beats\" only when the 95% interval excludes 0.",
            complements,
        )
    ensemble = ensemble_table(bars.get("ensemble") or {})
    if ensemble:
        lines += section(
            "## Would more models measure bars better?",
            f"The chosen setting applied to each model's maps alone ({', '.join(next(iter(bars['ensemble'].values()))['members'])}); "
            "the mean of k models' lengths scored on the test galaxies, averaged over every k-subset (with k = all "
            "models it is the saliency length when the chosen map source is mean_length; this run's: "
            f"{bars.get('map_source', 'n/a')}). What the models share does not average away: the Spearman-Brown "
            "form 1/r_k^2 = a + b/k, fitted to the "
            "curve, predicts what twice the models and infinitely many models of this recipe would reach "
            "(95% bootstrap intervals over the galaxies; `plots/figures/ensemble.png`).",
            ensemble,
        )
    return lines


def rotation_section(rotation: Mapping) -> list[str]:
    spread = rotation["median_relative_spread"]
    return [
        "## Rotation stability",
        "",
        f"{rotation['galaxies']} test galaxies turned by {', '.join(f'{a:g}' for a in rotation['angles_deg'])} deg, "
        "maps recomputed, bars measured with the chosen settings: median relative spread (max - min) / mean "
        f"of the length across angles: {spread['abs_pearson']:.1%} with the paper's |Pearson r| rule, "
        f"{spread['elongation']:.1%} with the rotation-invariant elongation rule "
        f"(target {rotation['elongation_target']:.0%}).",
        noise_sentence(rotation),
        "",
    ]


SEED_COLUMNS = ("spearman_truth", "vs_random_weights", "vs_permuted_labels", "vs_image", "vs_isophote", "vs_control_cnn", "gap_closed")
"""The headline rows the seed-spread table shows: the claims of the README, one column each."""


def seeds_section(records: Sequence[Mapping] | None) -> list[str]:
    """The recorded runs of the default configuration on other training seeds (:func:`galaxy_xai.results.runs.seed_records`),
    so a reader sees which of this run's verdicts hold on every seed; [] with fewer than two runs."""
    if not records or len(records) < 2:
        return []
    return [
        "## Seed spread: the default configuration on other training seeds and CPUs", "",
        f"Another training seed trains other models (and twins), and another CPU renders another synthetic sky from "
        f"the same seed; a conclusion holds only where it holds on every run. The {len(records)} recorded runs of the "
        "committed `params.yaml` that differ at most in `train.seed` (`records/`, written by `python -m "
        "tools.record_experiment`; each row links its record, with the command, commit and machine). Cells: value [95% bootstrap interval]; for `vs` columns the saliency length minus the "
        "other, paired on the same test galaxies, and the verdict (\"just\": the interval clears 0 by less than 0.02).",
        "", *runs.table(records, SEED_COLUMNS, "records/"), "",
    ]  # fmt: skip


LEVER_COLUMNS = ("spearman_truth", "vs_commit_run", "vs_random_weights", "vs_permuted_labels", "vs_image", "vs_control_cnn")
"""The headline rows the levers table shows: the score the floor is about, the pairing with the default and the controls."""


def levers_section(records: Sequence[Mapping] | None) -> list[str]:
    """The recorded runs of other recipes (:func:`galaxy_xai.results.runs.lever_records`, best first): what
    was tried against the Spearman target and floor, and whether any run reached them; [] without any."""
    if not records:
        return []
    target, floor = SPEARMAN_TRUTH_TARGET["target"], SPEARMAN_TRUTH_TARGET["floor"]

    def spearman(rec: Mapping) -> float | None:
        return runs.headline_value(rec, "spearman_truth")

    def score(rec: Mapping) -> str:
        return f"`{rec['name']}`, {runs.interval(rec['headline']['spearman_truth'], 'value', '.3f')}"

    scored = [rec for rec in records if spearman(rec) is not None]
    if scored:
        best = max(scored, key=spearman)
        reached = [rec["name"] for rec in scored if spearman(rec) >= floor]
        outcome = (
            f"{len(reached)} of them {'reaches' if len(reached) == 1 else 'reach'} the floor {floor:.2f} ({', '.join(f'`{n}`' for n in reached)})" if reached
            else f"none reaches the floor {floor:.2f} (target {target:.2f}): the best is {score(best)}"
        )  # fmt: skip
        # A length a random network nearly reproduces is not the model's: name the best that clearly is.
        model_made = [rec for rec in scored if runs.verdict_text(rec["headline"].get("vs_random_weights", {})) == "beats"]
        clear = max(model_made, key=spearman, default=best)
        if clear is not best:
            outcome += f"; the best whose lengths beat its random-weights twins' clearly (interval above +{runs.JUST}) is {score(clear)}"
        if not reached:
            # The table rounds bounds to 2 decimals: say whether an interval reaches the floor, to 3.
            upper = max(scored, key=lambda rec: rec["headline"]["spearman_truth"].get("value_95up", -1.0))
            bound = upper["headline"]["spearman_truth"].get("value_95up")
            if bound is not None:
                outcome += (
                    f"; `{upper['name']}`'s 95% interval reaches the floor (upper bound {bound:.3f})" if bound >= floor
                    else f"; every run's 95% interval lies below the floor (the highest upper bound, `{upper['name']}`'s, is {bound:.3f})"
                )  # fmt: skip
    else:
        outcome = "none of them has a Spearman rho against the true length (real data)"
    return [
        "## Other recipes tried: the recorded levers", "",
        f"The {len(records)} recorded runs that change the default's params beyond the training seed (`records/`, "
        "each a `dvc exp run -S ...` of the default at its commit, twins included, so a row's defaults are its "
        f"commit's; best first): {outcome}. \"vs the default (paired)\": the run's Spearman minus the default's "
        "at its commit on the same galaxies, where its lengths were at hand when recorded (a run on another sky has "
        "none); the other `vs` columns are the run's own explanation minus its controls, as in the tables above.",
        "", *runs.table(records, LEVER_COLUMNS, "records/"), "",
    ]  # fmt: skip


def report_markdown(
    run: RunMetrics, shared: Mapping, explainer: str, setup: Mapping | None = None, benchmark: Mapping | None = None,
    seed_runs: Sequence[Mapping] | None = None, lever_runs: Sequence[Mapping] | None = None,
) -> str:
    """report.md: a summary, definitions, then this run's tables and headline numbers beside the paper's.

    ``shared``: the saliency maps' lengths vs the control CNN's (:func:`galaxy_xai.results.comparison.control_comparisons`);
    ``explainer``: the explainer as the figures name it (:func:`galaxy_xai.results.figures.explainer_name`);
    ``setup``: the run's ``size_px`` and model ``archs`` (:func:`setup_sentence`); ``benchmark``: the
    catalogue's scores against the truth (:func:`galaxy_xai.results.comparison.catalogue_benchmark`), if known;
    ``seed_runs``: the recorded runs of the default configuration on other seeds (:func:`seeds_section`);
    ``lever_runs``: the recorded runs of other recipes, best first (:func:`levers_section`).
    """
    lines = [
        "# Report of the last `dvc repro`",
        "",
        "Written by the `figure` stage from the metrics files of this run; the paper is Bhambra, Joachimi & "
        "Lahav (2022). This run's data are those of `params.yaml` (`data.path`); on the default synthetic sky "
        "the numbers are not the paper's data, model sizes or image sizes, so compare trends, not digits.",
        "",
        *summary_section(run, shared, explainer, setup),
        *definitions_section(benchmark),
        *table1_section(run),
        *table2_section(run),
        *headline_section(run.barlengths, run.control, shared),
        *controls_section(run, shared, benchmark),
        *([demote_headings(run.true_axis_md.strip()), ""] if run.true_axis_md.strip() else []),
        *seeds_section(seed_runs),
        *levers_section(lever_runs),
        *extras_section(run.barlengths, shared),
        *rotation_section(run.rotation),
        setup_sentence(run, explainer, setup or {}),
        "",
        *figures_section(run.barlengths, shared),
    ]
    if run.explainers.strip():
        lines += [demote_headings(run.explainers.strip()), "", "Figures: `plots/explainers.png`, `plots/explainers_sanity.png`.", ""]
    return "\n".join(lines)


def demote_headings(markdown: str) -> str:
    """``markdown`` with every ATX heading one level deeper (``# A`` -> ``## A``), to nest it in the report."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())
