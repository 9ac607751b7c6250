"""The documentation stays true: the params reference is generated from the config, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from galaxy_xai.config import load_config, params_markdown
from tools import run_tables

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
    # 160 while the hand-written table of runs and its generated successor stand side by side.
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 160


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_tables_of_runs_are_what_their_records_generate(page):
    """Regenerate with ``python -m tools.run_tables``; a table naming a run with no record fails here."""
    text = page.read_text(encoding="utf-8")
    assert run_tables.regenerate(text, page) == text, f"{page.name}: python -m tools.run_tables"



def test_the_paper_scale_page_shows_the_command_for_the_paper_file():
    """docs/paper-scale.md's command is the one tests/test_paper_scale.py runs, on the file it checks."""
    from galaxy_xai.config import load_config

    text = (ROOT / "docs" / "paper-scale.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert "python -m tools.use_params configs/paper.yaml --set data.path=" in block
    cfg = load_config(ROOT / "configs" / "paper.yaml")
    assert cfg.images.size_px == 224 and {m.arch for m in cfg.models.values()} == {"vgg16", "resnet50v2", "xception"}


def test_the_layout_names_every_library_module():
    """docs/pipeline.md's layout lists every module of galaxy_xai/, so a new or moved module updates it."""
    layout = (ROOT / "docs" / "pipeline.md").read_text()
    package = ROOT / "galaxy_xai"
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py"]
    assert modules
    missing = [p.relative_to(package).as_posix() for p in modules if f" {p.name} " not in layout]
    assert not missing, f"docs/pipeline.md does not list {missing}"
