"""The results phase: scores, comparisons, the headline, Table 1, the figures and report.md.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = [
    "comparison", "ensemble", "evaluation", "explainers_report", "figures", "formatting", "headline", "panels", "paper", "report",
    "runs", "table1",
]
