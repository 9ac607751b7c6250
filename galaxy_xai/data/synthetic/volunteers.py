"""The simulated volunteers: Galaxy Zoo vote fractions and Hoyle-style bar measurements.

:func:`morphology_features` lists the true properties volunteers react to, :func:`answer_probabilities`
turns them into each question's answer probabilities, :func:`simulate_votes` walks volunteers down the
decision tree (vote fractions, shape (n, 37), in ``galaxyzoo.CLASS_COLUMNS`` order; the tree holds
exactly), :func:`round_tree` rounds them to integer millionths that still obey it and
:func:`format_micro` writes those as the real file does. :func:`volunteer_bar_measurements` draws the
bar catalogue's lengths, widths, spreads and ``bar_meas`` around the true lengths (units of
2 PETROR90_R).
"""

from __future__ import annotations

import numpy as np

from galaxy_xai import units
from galaxy_xai.data import galaxyzoo
from galaxy_xai.data.synthetic.population import VOLUNTEER_LOG_SIGMA, Galaxy

# Real bar_meas (number of volunteers who measured the bar) counts for 3, 4, ..., 11.
BAR_MEAS_COUNTS = np.array([989, 1023, 916, 195, 5, 11, 6, 4, 1])
# Per-volunteer scatter reproducing the real length_stdev / length_avg (median 0.15) and
# width_stdev / width_avg (median 0.37) for 3 - 5 volunteers.
VOLUNTEER_LENGTH_LOG_SIGMA, VOLUNTEER_WIDTH_LOG_SIGMA = 0.16, 0.42


def morphology_features(galaxies: list[Galaxy]) -> dict[str, np.ndarray]:
    """The true properties the simulated volunteers react to, as arrays of shape (n,)."""

    def col(fn) -> np.ndarray:
        return np.array([fn(g) for g in galaxies], dtype=float)

    return {
        "smooth": col(lambda g: g.kind == "smooth"),
        "edgeon": col(lambda g: g.kind == "edgeon"),
        "axis_ratio": col(lambda g: g.disk_axis_ratio),
        "bulge_fraction": col(lambda g: g.bulge_fraction),
        "has_bar": col(lambda g: g.has_bar),
        "bar_length_scaled": col(lambda g: units.px424_to_scaled(g.bar_length_px) if g.has_bar else 0.0),
        "bar_fraction": col(lambda g: g.bar_fraction),
        "has_arms": col(lambda g: g.has_arms),
        "arm_fraction": col(lambda g: g.arm_fraction),
        "n_arms": col(lambda g: g.n_arms),
        "pitch_deg": col(lambda g: g.arm_pitch_deg),
        "petromag_r": col(lambda g: g.petromag_r),
        "companion": col(lambda g: g.has_companion),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def answer_probabilities(
    m: dict[str, np.ndarray], rng: np.random.Generator, perception_sigma: float = 0.4
) -> dict[int, np.ndarray]:
    """Probability that a volunteer picks each answer of each question: {question: (n, answers)}.

    Driven by the true morphology ``m`` (from :func:`morphology_features`): visible structure pulls
    votes to "features", thin disks to "edge-on", a bar earns more "bar" votes the longer and
    brighter it is, arms to "spiral", bulge_fraction sets the bulge prominence, the axis ratio the
    roundness, pitch angle the arm tightness, a close companion the "odd / merger" answers; fainter
    galaxies look smoother. Each galaxy's crowd also shares a random perception offset per answer
    (log-odds, sigma ``perception_sigma``).
    """
    n = len(m["smooth"])
    disk = 1 - m["smooth"]
    faint = np.clip(m["petromag_r"] - 15.5, 0, None)
    structure = (
        2.5 * (1 - m["bulge_fraction"]) + 5 * m["arm_fraction"] + 7 * m["bar_fraction"] + 2.5 * m["edgeon"]
    )
    logits = {
        1: np.column_stack(
            [np.zeros(n), disk * (structure - 1.0) - 2.8 * m["smooth"] - 0.6 * faint, np.full(n, -4.5)]
        ),
        2: np.column_stack([10 * (0.3 - m["axis_ratio"]), np.zeros(n)]),
        3: np.column_stack(
            [
                m["has_bar"]
                * (
                    -1.2
                    + 6 * (m["bar_length_scaled"] - 0.3)
                    + 14 * m["bar_fraction"]
                    - 2.5 * (1 - m["axis_ratio"])
                )
                - 2.3 * (1 - m["has_bar"]),
                np.zeros(n),
            ]
        ),
        4: np.column_stack(
            [m["has_arms"] * (0.3 + 9 * m["arm_fraction"]) - 1.8 * (1 - m["has_arms"]), np.zeros(n)]
        ),
        5: -((np.arange(4)[None, :] - 3 * np.clip(m["bulge_fraction"] / 0.45, 0, 1)[:, None]) ** 2) / 0.8,
        6: np.column_stack([-2.2 + 2.6 * m["companion"], np.zeros(n)]),
        7: -(((m["axis_ratio"][:, None] - np.array([0.92, 0.65, 0.35])[None, :]) / 0.15) ** 2),
        8: np.array([0.0, -0.3, -0.5, -0.8, 0.8, -1.2, -1.2])[None, :]
        + m["companion"][:, None] * np.array([0, 0, 1.0, 0, 0, 2.8, 0])[None, :]
        + m["edgeon"][:, None] * np.array([0, 0, 0, 0, 0, 0, 1.8])[None, :],
        9: np.column_stack(
            [6 * (m["bulge_fraction"] - 0.1), np.full(n, -1.0), 6 * (0.1 - m["bulge_fraction"])]
        ),
        10: m["has_arms"][:, None]
        * (-(((m["pitch_deg"][:, None] - np.array([10.0, 20.0, 30.0])[None, :]) / 7.0) ** 2)),
        11: np.column_stack(
            [
                m["has_arms"][:, None] * 2.5 * (np.arange(1, 6)[None, :] == m["n_arms"][:, None]),
                0.5 + 2.0 * (1 - m["has_arms"]) - 4 * m["arm_fraction"],
            ]
        ),
    }
    probs = {}
    for q, lg in logits.items():
        lg = np.asarray(lg, dtype=float)
        probs[q] = _softmax(lg + perception_sigma * rng.standard_normal(lg.shape))
    return probs


def simulate_votes(
    probs: dict[int, np.ndarray], rng: np.random.Generator, n_volunteers: int = 40
) -> np.ndarray:
    """Weighted vote fractions (n, 37) in CLASS_COLUMNS order from volunteers walking the tree.

    Every volunteer answers question 1 and then only the questions its answers lead to
    (:data:`galaxyzoo.PARENT`), plus question 6 and, after "odd", question 8. Volunteers carry
    consistency weights (most 1, some down-weighted, as in Galaxy Zoo's debiasing), and an answer's
    fraction is the weight of the volunteers who gave it over the total weight. So every question's
    answers sum exactly to the fraction of its parent answer: the tree holds by construction.
    """
    n = len(probs[1])
    weights = np.where(rng.random((n, n_volunteers)) < 0.85, 1.0, rng.uniform(0.1, 1.0, (n, n_volunteers)))
    index = {c: i for i, c in enumerate(galaxyzoo.CLASS_COLUMNS)}
    chose = np.zeros((n, n_volunteers, len(galaxyzoo.CLASS_COLUMNS)), dtype=bool)
    for q in sorted(galaxyzoo.PARENT):  # parents come before their children
        parent = galaxyzoo.PARENT[q]
        reached = np.ones((n, n_volunteers), dtype=bool) if parent is None else chose[:, :, index[parent]]
        cumulative = np.cumsum(probs[q], axis=1)
        answer = (rng.random((n, n_volunteers, 1)) > cumulative[:, None, :-1]).sum(axis=2)
        for a, column in enumerate(galaxyzoo.question_columns(q)):
            chose[:, :, index[column]] = reached & (answer == a)
    return np.einsum("nv,nvc->nc", weights, chose) / weights.sum(axis=1, keepdims=True)


MICRO = 1_000_000


def round_tree(fractions: np.ndarray) -> np.ndarray:
    """Round vote fractions (n, 37) to integer millionths that obey the tree exactly.

    Questions 1 and 6 share out 10^6; each child question shares out its parent's rounded value in
    proportion to its raw fractions (largest-remainder rounding), so every constraint holds to the
    last digit and each value moves by at most ~1e-6.
    """
    fractions = np.asarray(fractions, dtype=float)
    index = {c: i for i, c in enumerate(galaxyzoo.CLASS_COLUMNS)}
    micro = np.zeros(fractions.shape, dtype=np.int64)
    for q in sorted(galaxyzoo.PARENT):
        parent = galaxyzoo.PARENT[q]
        cols = [index[c] for c in galaxyzoo.question_columns(q)]
        total = np.full(len(fractions), MICRO, dtype=np.int64) if parent is None else micro[:, index[parent]]
        raw = np.clip(fractions[:, cols], 0, None)
        raw_sum = raw.sum(axis=1, keepdims=True)
        share = np.divide(raw, raw_sum, out=np.zeros_like(raw), where=raw_sum > 0) * total[:, None]
        base = np.floor(share).astype(np.int64)
        remainder = total - base.sum(axis=1)
        rank = np.argsort(np.argsort(-(share - base), axis=1, kind="stable"), axis=1, kind="stable")
        micro[:, cols] = base + (rank < remainder[:, None])
    return micro


def format_micro(micro: np.ndarray) -> np.ndarray:
    """Integer millionths -> the real file's number style ('0', '1', '0.383147')."""
    text = np.char.mod("%.6f", np.asarray(micro) / MICRO)
    return np.char.rstrip(np.char.rstrip(text, "0"), ".")


# --- the Hoyle catalogue's volunteers ------------------------------------------------------------------
def volunteer_bar_measurements(
    length_scaled_true, bar_axis_ratio, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Hoyle-style measurements of bars of known true length, arrays of shape (n,).

    One shared log-normal factor (sigma 0.17, Hoyle et al.'s reproducibility) multiplies each
    galaxy's true length; widths are the axis ratio times the true length with their own factor;
    ``bar_meas`` (3 - 11) follows the real catalogue, and the standard deviations are the sample
    spread of that many volunteers' individual measurements. Returns length_scaled, width_scaled,
    length_stdev_scaled, width_stdev_scaled and bar_meas (all lengths in units of 2 PETROR90_R).
    """
    true = np.asarray(length_scaled_true, dtype=float)
    q = np.asarray(bar_axis_ratio, dtype=float)
    n = len(true)
    bar_meas = rng.choice(np.arange(3, 12), size=n, p=BAR_MEAS_COUNTS / BAR_MEAS_COUNTS.sum())
    length = true * np.exp(VOLUNTEER_LOG_SIGMA * rng.standard_normal(n))
    width = q * true * np.exp(VOLUNTEER_LOG_SIGMA * rng.standard_normal(n))

    def spread(log_sigma: float) -> np.ndarray:
        individual = np.exp(log_sigma * rng.standard_normal((n, 11)))
        used = np.arange(11)[None, :] < bar_meas[:, None]
        mean = (individual * used).sum(1) / bar_meas
        return np.sqrt((((individual - mean[:, None]) ** 2) * used).sum(1) / (bar_meas - 1))

    return {
        "length_scaled": length,
        "width_scaled": width,
        "length_stdev_scaled": length * spread(VOLUNTEER_LENGTH_LOG_SIGMA),
        "width_stdev_scaled": width * spread(VOLUNTEER_WIDTH_LOG_SIGMA),
        "bar_meas": bar_meas,
    }
