"""Test tiers and shared fixtures.

``pytest`` runs the fast tier (unit tests of the science, bad input, the stages on tiny folders);
``pytest --all`` adds the slow tiers that run the real ``dvc repro`` or start several processes
(markers ``e2e``, ``paper_scale``, ``distributed``): that is what CI runs. ``-m`` still selects as
usual among the tests a tier lets through, e.g. ``pytest --all -m e2e``.

Shared helpers live in modules beside this file: :mod:`tests.fixtures` (data folders in the real
layout, params files), :mod:`tests.tiny_models` (tiny Keras models and images), :mod:`tests.e2e`
(a temporary copy of the repository and its ``dvc repro``), :mod:`tests.oracle` (independent
references of the published algorithm).
"""

from __future__ import annotations

import pytest

SLOW_TIERS = ("e2e", "paper_scale", "distributed")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        default=False,
        help=f"also run the slow tiers ({', '.join(SLOW_TIERS)}): the real dvc repro and multi-process runs",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--all"):
        return
    for item in items:
        tiers = [tier for tier in SLOW_TIERS if tier in item.keywords]
        if tiers:
            item.add_marker(pytest.mark.skip(reason=f"slow tier ({', '.join(tiers)}): run with pytest --all"))


@pytest.fixture(scope="module")
def cnn():
    """A tiny nonlinear model with the project's interface (:func:`tests.tiny_models.tiny_cnn`), one per module."""
    from tests.tiny_models import tiny_cnn

    return tiny_cnn()
