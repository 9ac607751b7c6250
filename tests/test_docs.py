"""The documentation stays true: the params reference is generated from the config, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from galaxy_xai.config import load_config, params_markdown

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_params_reference_is_what_the_config_generates():
    """Regenerate with ``python -m galaxy_xai.config > docs/params.md`` after changing a param."""
    assert (ROOT / "docs" / "params.md").read_text(encoding="utf-8") == params_markdown(
        load_config(ROOT / "params.yaml")
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    broken = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not broken, f"{page.name}: links to missing files {broken}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
