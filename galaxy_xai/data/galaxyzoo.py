"""The Galaxy Zoo 2 decision tree: its 11 questions, 37 answers and which answer leads to which question.

Dependency-free on purpose: the config checks ``xai.target`` against these answers, and
:mod:`galaxy_xai.data.catalogue` (which imports the config) validates label rows with them.
"""

from __future__ import annotations

QUESTIONS: dict[int, str] = {
    1: "smooth / features or disk / star or artefact",
    2: "edge-on disk?",
    3: "bar?",
    4: "spiral arms?",
    5: "bulge prominence",
    6: "anything odd?",
    7: "how rounded (smooth galaxies)",
    8: "odd feature",
    9: "edge-on bulge shape",
    10: "arm tightness",
    11: "number of arms",
}
N_ANSWERS: dict[int, int] = {1: 3, 2: 2, 3: 2, 4: 2, 5: 4, 6: 2, 7: 3, 8: 7, 9: 3, 10: 3, 11: 6}

PARENT: dict[int, str | None] = {
    1: None,
    2: "Class1.2",
    3: "Class2.2",
    4: "Class2.2",
    5: "Class2.2",
    6: None,
    7: "Class1.1",
    8: "Class6.1",
    9: "Class2.1",
    10: "Class4.1",
    11: "Class4.1",
}
"""Answer whose vote fraction each question's answers sum to (None: they sum to 1)."""

CLASS_COLUMNS: list[str] = [f"Class{q}.{a}" for q in N_ANSWERS for a in range(1, N_ANSWERS[q] + 1)]
"""The 37 answers in the Kaggle column order."""

LABEL_COLUMNS: list[str] = ["GalaxyID", *CLASS_COLUMNS]

BAR_QUESTION = 3
"""Galaxy Zoo 2's question 3, "Is there a sign of a bar feature through the centre of the galaxy?"
(answers Class3.1 bar, Class3.2 no bar)."""


def question_columns(question: int) -> list[str]:
    """Column names of one question's answers, e.g. 3 -> ['Class3.1', 'Class3.2']."""
    return [f"Class{question}.{a}" for a in range(1, N_ANSWERS[question] + 1)]
