"""report.md: this run's tables and headline numbers beside the paper's, as Markdown.

:func:`report_markdown` takes the run's metrics (:class:`RunMetrics`, read from the metrics folder by
:meth:`RunMetrics.read`), the saliency-vs-control-CNN comparison (:func:`galaxy_xai.comparison.control_comparisons`)
and the explainer's name. The report puts Table 1, Table 2 and the headline numbers with their
intervals beside the paper's; a table of the saliency maps' lengths against each control (control CNN
cross-fit and paper split, and the image-only, isophote and Fourier-of-light lengths of
``barlengths.json``'s ``controls`` when present), the issue's Spearman-vs-truth target, and every
estimator's test rho (``barlengths.json``'s ``estimators``, when present), and what each length adds
to the isophote length (the comparison's ``complements``, when present). The helpers format one
score with its interval, a setting, a paired difference; nothing here computes a score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from galaxy_xai.io import read_json

PAPER = {"rho": 0.76, "control_rho": 0.59}

SPEARMAN_TRUTH_TARGET = {"target": 0.70, "floor": 0.65}
"""Issue #13's target for the Spearman rho of the saliency lengths against the true length (image units)."""


VERDICT_WORDS = {"beats": "beats", "ties": "ties with", "loses": "loses to"}
"""How a sentence says evaluation.verdict's outcome of saliency minus control."""


def with_interval(d: dict, key: str) -> str:
    """``d[key]`` and its ``<key>_ci95`` as '0.373 [0.25, 0.48]'; 'n/a' for a missing value or bound."""
    value, interval = d.get(key), d.get(f"{key}_ci95") or [None, None]
    if value is None:
        return "n/a"
    bounds = ", ".join("n/a" if b is None else f"{b:.2f}" for b in interval)
    return f"{value:.3f} [{bounds}]"


def comparison_sentence(convention: str, label: str, shared: dict, key: str) -> str:
    """One sentence, one convention: both scores with their intervals and the paired verdict."""
    sal, con, diff = shared["saliency"], shared["control"], shared["difference"][key]
    lo, hi = ("n/a" if b is None else f"{b:+.2f}" for b in diff["ci95"])
    difference = "n/a" if diff["difference"] is None else f"{diff['difference']:+.3f}"
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


def plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def paired_text(diff: dict | None) -> tuple[str, str]:
    """A paired difference {difference, ci95, verdict} as ('+0.123 [-0.05, +0.29]', 'ties with'); n/a if absent."""
    if not diff or diff.get("difference") is None:
        return "n/a", "n/a"
    lo, hi = ("n/a" if b is None else f"{b:+.2f}" for b in (diff.get("ci95") or [None, None]))
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
    "segmentation": "a U-Net trained on the true bar masks (supervised segmentation: the ceiling)",
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
    (``comparison.json``'s ``complements``, :func:`galaxy_xai.comparison.complement_comparison`)."""
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
    :func:`galaxy_xai.ensemble.ensemble_curve`): Spearman rho of the mean of k models' lengths, then
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
            f"| {with_interval(row, val_key) if f'{val_key}_ci95' in row else plain(row.get(val_key))} "
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


@dataclass(frozen=True)
class RunMetrics:
    """The metrics files of one run that the report reads, each as its stage wrote it.

    ``table1``, ``table2``: the Markdown of ``table1.md`` (predict) and ``table2.md`` (gridsearch);
    ``morphology``: ``morphology.json`` (predict); ``gridsearch``: ``gridsearch.json`` (its
    ``chosen``, ``choice_stability``, ``linearity``, ``n``); ``barlengths``: ``barlengths.json``
    (measure); ``control``: ``control.json`` (control); ``rotation``: ``rotation.json`` (rotation);
    ``explainers``: the Markdown of ``explainers.md`` (explainers stage; "" if the file is absent).
    """

    table1: str
    table2: str
    morphology: Mapping
    gridsearch: Mapping
    barlengths: Mapping
    control: Mapping
    rotation: Mapping
    explainers: str = ""

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
            (folder / "explainers.md").read_text() if (folder / "explainers.md").is_file() else "",
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


def report_markdown(run: RunMetrics, shared: Mapping, explainer: str, setup: Mapping | None = None) -> str:
    """report.md: this run's tables and headline numbers beside the paper's.

    ``shared``: the saliency maps' lengths vs the control CNN's (:func:`galaxy_xai.comparison.control_comparisons`);
    ``explainer``: the explainer as the figures name it (:func:`galaxy_xai.figures.explainer_name`);
    ``setup``: the run's ``size_px`` and model ``archs`` (:func:`setup_sentence`).
    """
    table1, table2, morph, grid = run.table1, run.table2, run.morphology, run.gridsearch
    bars, control, rotation = run.barlengths, run.control, run.rotation

    def num(d: dict, key: str) -> str:
        value = d.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    ci = with_interval
    chosen, stability = grid["chosen"], grid["choice_stability"]
    kept_preferred = bool((chosen.get("preference") or {}).get("kept_preferred"))
    sal, con = shared.get("saliency", {}), shared.get("control", {})
    paper = control.get("paper_split", {})
    paper_shared = shared.get("paper_split", {})
    alternatives = "; ".join(f"{a['map_source']} ({setting_text(a)}) {a['frequency']:.0%}" for a in stability["alternatives"])
    lines = [
        "# Report of the last `dvc repro`",
        "",
        "Written by the `figure` stage from the metrics files of this run; the paper is Bhambra, Joachimi & "
        "Lahav (2022). This run's data are those of `params.yaml` (`data.path`); on the default synthetic sky "
        "the numbers are not the paper's data, model sizes or image sizes, so compare trends, not digits.",
        "",
        "## Table 1: morphology models (RMSE of the 37 vote fractions)",
        "",
        table1.strip(),
        "",
        f"Ensemble test RMSE / training-mean baseline: {morph['test_rmse_over_mean_baseline']['ensemble']:.3f}. "
        + (f"Bar ROC AUC of the ensemble's Class3.1 on true barred vs unbarred disks: {morph['bar_auc']:.3f}." if morph.get("bar_auc") is not None else ""),
        "",
        "## Table 2: grid search on the validation split",
        "",
        table2.strip(),
        "",
        f"Chosen: **{chosen['map_source']}**, {setting_text(chosen)}"
        + (f" (T_l in 224-px units; {chosen['len_threshold_px']} px here)" if chosen.get("len_threshold_px") is not None else "")
        + f", linearity = {grid['linearity']}. The search ranks by rho in image units (no shared PETROR90_R factor); "
        f"this setting's validation rho_image is {ci(chosen, 'rho_image')} (95% bootstrap interval).",
        "",
        (f"{preference_sentence(chosen)} " if chosen.get("preference") else "")
        + f"Choice stability{' among the preferred rows' if kept_preferred else ''}: on {stability['resamples']} "
        f"bootstrap resamples of the {grid['n']} validation galaxies, "
        f"the search picks {stability['map_source']} again in {stability['map_source_frequency']:.0%} of them and this exact "
        f"setting in {stability['setting_frequency']:.0%}. Most frequent alternatives: {alternatives or 'none'}.",
        "",
        "## Headline: bar lengths on the test split",
        "",
        "| quantity | this run | paper |",
        "|---|---:|---:|",
        f"| saliency method rho (paper convention, x PETROR90_R) | {ci(bars, 'rho')} | {PAPER['rho']} |",
        f"| saliency method rho in image units | {ci(bars, 'rho_image')} | not reported |",
        f"| saliency method Spearman (paper convention) | {ci(bars, 'spearman')} | - |",
        f"| saliency method Spearman in image units | {ci(bars, 'spearman_image')} | - |",
        f"| rho that the shared PETROR90_R factor alone gives (permutation null: mean / 95th percentile) | {num(bars, 'rho_null')} / {num(bars, 'rho_null_p95')} | not reported |",
        f"| permutation p-value of rho / of rho_image | {num(bars, 'rho_p_value')} / {num(bars, 'rho_image_p_value')} | - |",
        f"| saliency method rho against the true length (synthetic) | {ci(bars, 'rho_truth')} | - |",
        f"| saliency method rho_image against the true length (synthetic) | {ci(bars, 'rho_truth_image')} | - |",
        f"| saliency method Spearman against the true length, image units (synthetic; target {SPEARMAN_TRUTH_TARGET['target']:.2f}) "
        f"| {ci(bars, 'spearman_truth_image')} | - |",
        f"| slope measured / catalogue (kpc, through the origin) | {num(bars, 'slope')} +- {num(bars, 'slope_err')} | - |",
        f"| control CNN rho (paper convention), cross-fit | {ci(control, 'rho')} | not done |",
        f"| control CNN rho in image units, cross-fit | {ci(control, 'rho_image')} | not reported |",
        f"| control CNN rho_image against the true length (synthetic), cross-fit | {ci(control, 'rho_truth_image')} | - |",
        f"| control CNN rho (paper convention), paper split | {ci(paper, 'rho')} | {PAPER['control_rho']} |",
        f"| control CNN rho in image units, paper split | {ci(paper, 'rho_image')} | not reported |",
        f"| galaxies (saliency test / control cross-fit / control paper split) | {bars['n']} / {control['n']} / "
        f"{paper.get('n', 'n/a')} | 2100 / - / 630 |",
        "",
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
    ]
    for label, comparison in (("", shared), (", paper split", paper_shared)):
        for method, name in (("saliency", "saliency"), ("control", "control CNN")):
            scores = comparison.get(method, {})
            lines.append(
                f"| {name}{label} | {comparison.get('n_shared', 0)} | {ci(scores, 'rho')} | {ci(scores, 'rho_image')} "
                f"| {ci(scores, 'rho_truth_image')} | {ci(scores, 'spearman_truth_image')} |"
            )
    lines.append("")
    if sal and con:
        # One sentence per convention: the paper's rho and rho in image units answer different questions.
        sentences = [
            comparison_sentence("In the paper's convention (both lengths x PETROR90_R)", "rho", shared, "rho")
            + f" The paper reports {PAPER['rho']} vs {PAPER['control_rho']} in this convention.",
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
    lines += [
        "## The saliency method vs each control",
        "",
        "Each control measured on the same test galaxies as the saliency method; the difference is the saliency "
        "method's score minus the control's, from a paired bootstrap (both on the same resamples of the galaxies); "
        "the verdict reads \"the saliency method beats / ties with / loses to the control\", and says beats only "
        "when the 95% interval excludes 0.",
        "",
        *controls_table(bars, shared),
        "",
    ]
    target = target_sentence(bars, shared)
    if target:
        lines += [target, ""]
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
    spread = rotation["median_relative_spread"]
    lines += [
        "",
        "## Rotation stability",
        "",
        f"{rotation['galaxies']} test galaxies turned by {', '.join(f'{a:g}' for a in rotation['angles_deg'])} deg, "
        "maps recomputed, bars measured with the chosen settings: median relative spread (max - min) / mean "
        f"of the length across angles: {spread['abs_pearson']:.1%} with the paper's |Pearson r| rule, "
        f"{spread['elongation']:.1%} with the rotation-invariant elongation rule "
        f"(target {rotation['elongation_target']:.0%}).",
    ]
    lines.append(noise_sentence(rotation))
    lines += [
        "",
        setup_sentence(run, explainer, setup or {}),
        "",
        "Figures: `plots/figures/`.",
        "",
    ]
    if run.explainers.strip():
        lines += [demote_headings(run.explainers.strip()), "", "Figures: `plots/explainers.png`, `plots/explainers_sanity.png`.", ""]
    return "\n".join(lines)


def demote_headings(markdown: str) -> str:
    """``markdown`` with every ATX heading one level deeper (``# A`` -> ``## A``), to nest it in the report."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())
