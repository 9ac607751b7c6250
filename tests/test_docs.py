"""The documentation stays true: the params reference is generated from the config, links resolve."""

from __future__ import annotations

import json
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


FENCE = re.compile(r"^(```|~~~)")


def headings(markdown: str) -> list[str]:
    """The ATX headings (``# ...`` to ``###### ...``) of a page, outside fenced code blocks."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            found.append(match.group(1))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: links reduced to their text, lower case, punctuation other than
    '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a Markdown page, a repeated heading's with GitHub's -1, -2, ... suffixes."""
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(page.read_text(encoding="utf-8")):
        base = slug(heading)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def broken_pointer(base: Path, target: str, anchor: str | None) -> str | None:
    """Why ``target#anchor`` (relative to the folder ``base``; '' for the page itself) does not resolve, or None."""
    path = base / target if target else None
    if path is not None and not path.exists():
        return f"{target}: no such file"
    if anchor and (path is None or path.suffix == ".md") and anchor not in anchors(path or base):
        return f"{target}#{anchor}: no such heading"
    return None


def test_headings_slug_like_github():
    assert slug("What the explanation adds to the classical length and the control CNN (issue #13)") == (
        "what-the-explanation-adds-to-the-classical-length-and-the-control-cnn-issue-13"
    )
    assert slug("Ablation: the explainer, as `DVC` experiments") == "ablation-the-explainer-as-dvc-experiments"
    assert slug("[Paper scale](x.md) and time_s") == "paper-scale-and-time_s"
    assert headings("# A\n```\n# not a heading\n```\n## B ##\n") == ["A", "B"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_their_anchors_resolve(page):
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text)
    broken = [
        why for target, anchor in links if "://" not in target
        for why in [broken_pointer(page.parent, target, anchor) if target else
                    (None if anchor in anchors(page) else f"#{anchor}: no such heading")]
        if why
    ]  # fmt: skip
    assert not broken, f"{page.name}: {broken}"


CODE = [
    *sorted(p for folder in ("galaxy_xai", "stages", "tools", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")),
    ROOT / "params.yaml", ROOT / "dvc.yaml", *sorted((ROOT / "configs").glob("*.yaml")),
]  # fmt: skip
DOCS_POINTER = re.compile(r"(?<![\w/.])((?:docs/[\w-]+|README)\.md)(?:#([\w-]+))?")
README_SECTION = re.compile("README's " + r'"([^"]+)"')


@pytest.mark.parametrize("path", CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_codes_pointers_to_docs_resolve(path):
    """A docstring or comment pointing at ``docs/x.md[#anchor]``, ``README.md#anchor`` or the README's
    "Section" names a page and a heading that exist (pages and sections move; pointers must follow)."""
    if path.name == "test_docs.py":
        return
    text = path.read_text(encoding="utf-8")
    broken = [why for target, anchor in DOCS_POINTER.findall(text) if (why := broken_pointer(ROOT, target, anchor))]
    readme = {h.lower() for h in headings((ROOT / "README.md").read_text(encoding="utf-8"))}
    broken += [f'README section "{s}": no such heading' for s in README_SECTION.findall(text) if s.lower() not in readme]
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


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


def _shown_values(value) -> set[str]:
    """How the docs may print a recorded number: 2-4 decimals (with or without its sign) or a percentage."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return set()
    shown = {f"{v:.{d}f}" for v in (value, abs(value)) for d in (2, 3, 4)}
    return shown | {f"{100 * value:.{d}f}" for d in (0, 1)}


def test_the_readmes_headline_numbers_come_from_the_records_or_the_report():
    """Issue #27: no number in the README's headline table or its claims without a source file: each
    is a recorded run's headline value (records/*.json) or is printed in report.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    report = (ROOT / "report.md").read_text(encoding="utf-8")
    recorded = {
        shown
        for path in (ROOT / "records").glob("*.json")
        for row in json.loads(path.read_text())["headline"].values()
        for value in row.values()
        for shown in _shown_values(value)
    }
    table = readme[readme.index("| on the 640 test galaxies") :]
    table = table[: table.index("\n\n")]
    cells = [line.split("|")[2] for line in table.splitlines()[2:]]
    claims = readme[readme.index("What this says, and on how many runs") : readme.index("Every number above is in")]
    unsourced = [
        number
        for text in (*cells, claims)
        for number in re.findall(r"(?<![\w.])\d+\.\d+|\d+(?=%)", text)
        if number not in recorded and number not in report
    ]
    assert not unsourced, f"README numbers found in no record and not in report.md: {unsourced}"
