"""The documentation stays true: the params reference is generated from the config, links resolve."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
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


NUMBER = re.compile(r"(?<![\w./#])(?<![A-Za-z]-)(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?!\w|\.\d|,\d{3})")
"""A number a page reports: a decimal (0.537, 25.5), a percentage (18%), a count or size (640,
2,000; see :func:`reported`)."""


def reported(number: str) -> bool:
    """Whether a number on a page needs a source: every decimal and every integer from 10 up, but a
    year (1900-2099 written without a comma: citations) and the counts under 10 (3 models, 2 cores,
    4 quarter turns) that the prose uses as words."""
    if "." in number:
        return True
    value = int(number.replace(",", ""))
    return value >= 10 and not (1900 <= value <= 2099 and "," not in number)


SOURCES = re.compile(r"<!--\s*sources:\s*(.*?)\s*-->", re.S)
CODE_SPAN = r"`[^`\n]*`"
NOT_PROSE = re.compile(
    r"<!-- runs-table:start.*?<!-- runs-table:end -->"            # generated from records, tested above
    r"|<!--.*?-->|" + CODE_SPAN + r"|\]\([^)]*\)",                   # comments, code spans, link targets
    re.S | re.M,
)
TRACED_PAGES = [p for p in PAGES if p.name not in ("params.md", "history.md", "references.md")]
"""params.md is generated from the config; history.md holds the runs before records and references.md
the literature's numbers (each has its own test)."""


def _leaves(tree, key: str = ""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, str(k))
    elif isinstance(tree, list):
        for v in tree:
            yield from _leaves(v, key)
    else:
        yield key, tree


def shown_values(key: str, value) -> set[str]:
    """How a page may print a recorded number: 0-4 decimals (with or without its sign; thousands
    with or without commas), a percentage
    with 0-1 decimals; a duration in seconds (a key ending in ``seconds``) also in minutes, and in
    milliseconds (``seconds`` or ``_s``); megabytes (``_mb``) also in GB."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return set()
    shown = {f"{v:.{d}f}" for v in (value, abs(value)) for d in (0, 1, 2, 3, 4)} | {f"{abs(value):,.0f}"}
    shown |= {f"{100 * value:.{d}f}" for d in (0, 1)}
    if key.endswith("seconds"):
        shown |= {f"{value / 60:.1f}", f"{value / 60:.0f}"}
    if key.endswith(("seconds", "_s")):
        shown |= {f"{1000 * value:.{d}f}" for d in (1, 2)}
    if key.endswith("_mb"):
        shown |= {f"{value / 1000:.1f}"}
    return shown


def source_numbers(pattern: str) -> set[str]:
    """Every number the files matching ``pattern`` (relative to the repository) hold: a JSON file's
    values as a page may print them, the numbers of a text file (or of a JSON string) as written and
    rounded."""
    return _source_numbers(ROOT, pattern)


@functools.cache
def _source_numbers(root: Path, pattern: str) -> frozenset[str]:  # pages share sources: read each once
    paths = sorted(root.glob(pattern))
    assert paths, f"sources: {pattern} matches no file"
    found: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        leaves = list(_leaves(json.loads(text))) if path.suffix == ".json" else [("", text)]
        for key, value in leaves:
            if isinstance(value, str):  # numbers as written, and as a page may round them
                written = [n.replace(",", "") for n in re.findall(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?", value)]
                found |= set(written) | {s for n in written for s in shown_values("", float(n))}
            else:
                found |= shown_values(key, value)
    return frozenset(found)


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, text) of a page cut at its level-1 and level-2 headings; the sources named before the
    first level-2 heading (under the page's title) hold for the whole page."""
    prose = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown, flags=re.S | re.M)
    parts = re.split(r"^(#{1,2} .*)$", prose, flags=re.M)
    return [("(head)", parts[0]), *zip(parts[1::2], parts[2::2], strict=True)]


def unsourced_numbers(page: Path) -> dict[str, list[str]]:
    """{section: numbers found in none of the files its ``<!-- sources: ... -->`` comments name}."""
    text = page.read_text(encoding="utf-8")
    cut = sections(text)

    def named(body: str) -> list[str]:  # not the ones quoted in code spans
        return SOURCES.findall(re.sub(CODE_SPAN, "", body))

    page_sources = [s for heading, body in cut if not heading.startswith("## ") for s in named(body)]
    out = {}
    for heading, body in cut:
        patterns = [p for comment in (*page_sources, *named(body)) for p in comment.split()]
        known = set().union(*(source_numbers(p) for p in patterns)) if patterns else set()
        numbers = [n for n in NUMBER.findall(NOT_PROSE.sub(" ", body)) if reported(n)]
        missing = [n for n in numbers if n not in known and n.replace(",", "") not in known]
        if missing:
            out[heading] = missing
    return out


def test_numbers_are_looked_up_in_their_sources(tmp_path, monkeypatch):
    (tmp_path / "m.json").write_text(json.dumps(
        {"a": {"rho": 0.5371, "wall_seconds": 1530.0, "fast_s": 0.0008175, "peak_rss_mb": 2432.0}, "d": -0.074,
         "run": {"python": "3.11.7", "note": "5,234,130 passes"}, "n": 2000}))
    (tmp_path / "c.py").write_text("PAPER_RMSE = 0.07747\n")
    page = tmp_path / "p.md"
    page.write_text(
        "# T\n<!-- sources: m.json -->\nrho 0.537, 0.54, 25.5 min, 53.7%, -0.074, 0.82 ms, 2.4 GB, Python 3.11,"
        " 2,000 and 2000 galaxies, 5234130 passes, 3 models, AVX-512, Smith (2023) `0.999` [x](a/1.5.md) <!-- 0.3 -->\n"
        "## S\nOnly 0.123 here, not 0.0775, nor 12 or 1,234.\n"
        "## U\n<!-- sources: c.py -->\nThe paper's 0.0775; ours 0.537.\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert unsourced_numbers(page) == {"## S": ["0.123", "0.0775", "12", "1,234"]}


@pytest.mark.parametrize("page", TRACED_PAGES, ids=lambda p: p.name)
def test_every_number_on_a_page_comes_from_a_source_it_names(page):
    """Issue #27: a number in README.md or docs/ is a value of a committed record, metrics file,
    benchmark result, config or report that its section names in ``<!-- sources: ... -->``."""
    missing = unsourced_numbers(page)
    assert not missing, f"{page.name}: numbers found in none of their section's sources: {missing}"


def test_every_number_from_the_literature_names_its_paper():
    rows = [line for line in (ROOT / "docs" / "references.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| reference")]
    assert rows and all(re.search(r"\((?:19|20)\d\d\)|NVIDIA", row.split("|")[1]) for row in rows), rows


def test_every_section_of_the_history_names_the_commit_it_was_written_at():
    """docs/history.md's numbers predate the records: each section points at the commit whose page
    and runs they come from, and the commit is in this repository."""
    cut = [(h, b) for h, b in sections((ROOT / "docs" / "history.md").read_text(encoding="utf-8")) if h.startswith("## ")]
    named = {heading: re.findall(r"commits? `([0-9a-f]{7,40})`(?: and `([0-9a-f]{7,40})`)?", body) for heading, body in cut}
    assert all(named.values()), [h for h, c in named.items() if not c]
    if not (ROOT / ".git").exists() or (ROOT / ".git" / "shallow").exists():
        pytest.skip("no full git history here")
    for heading, found in named.items():
        for commit in filter(None, sum(found, ())):
            check = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
            assert check.returncode == 0, f"history.md {heading}: commit {commit} is not in this repository"
