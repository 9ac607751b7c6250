"""How numbers read in the tables, reports and log lines: the one place that formats them.

Metrics files store a missing score as null (None; :func:`galaxy_xai.results.evaluation.finite_or_none`)
and in-memory results as NaN; every function here takes both and writes the text its caller asks for
in their place ("n/a" in the report, "-" in the explainers' table, "" for a setting that does not
apply in Table 2).
"""

from __future__ import annotations

from collections.abc import Mapping


def missing(value) -> bool:
    """True for None and NaN: a score that was not (or could not be) computed."""
    return value is None or value != value  # NaN is the one value unequal to itself (float, NumPy or not)


def number(value, spec: str = ".3f", absent: str = "n/a") -> str:
    """``value`` formatted with ``spec`` (e.g. '.3f', 'g', '+.2f'), ``absent`` where it is missing."""
    return absent if missing(value) else format(value, spec)


def with_interval(d: Mapping, key: str) -> str:
    """``d[key]`` and its ``<key>_ci95`` as '0.373 [0.25, 0.48]'; 'n/a' for a missing value or bound."""
    value, interval = d.get(key), d.get(f"{key}_ci95") or [None, None]
    if value is None:
        return "n/a"
    return f"{value:.3f} [{', '.join(number(b, '.2f') for b in interval)}]"


def percent_interval(d: Mapping, key: str) -> str:
    """A fraction ``d[key]`` and its ``<key>_ci95`` as '75% [72%, 78%]'; 'n/a' if missing."""
    value, interval = d.get(key), d.get(f"{key}_ci95") or [None, None]
    if value is None:
        return "n/a"
    return f"{value:.0%} [{', '.join(number(b, '.0%') for b in interval)}]"


def mean_interval(score: Mapping, key: str = "mean", digits: int = 2, absent: str = "-") -> str:
    """A summary {key: value, "ci95": [lo, hi]} as '0.52 [0.47, 0.58]'; ``absent`` when the value is missing."""
    value = score[key]
    if missing(value):
        return absent
    lo, hi = score["ci95"]
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
