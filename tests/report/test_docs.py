"""The docs stay true: the README's size and commands, links, the generated outputs page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.report.outputs_doc import documented_patterns, main, render

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [
    README,
    REPO / "config" / "README.md",
    REPO / "src" / "meddap" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def _output_pattern(link: str) -> bool:
    """Whether `link` (relative to the repo) is a path some pattern of `paths` produces."""
    patterns = [value for _, value, _ in documented_patterns()]
    regexes = [re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) for p in patterns]
    return any(re.fullmatch(r, link) for r in regexes)


def _broken(page: Path, link: str) -> bool:
    """Whether a relative link of `page` points at no file (or at no heading of one)."""
    target, _, anchor = link.partition("#")
    file = (page.parent / target).resolve() if target else page
    if file.is_relative_to(REPO / "results"):
        return not _output_pattern(file.relative_to(REPO).as_posix())
    return not file.exists() or (bool(anchor) and anchor not in _anchors(file))


def test_readme_is_short_and_holds_the_ci_and_everyday_test_commands() -> None:
    text = README.read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.startswith("pip install") and ci in text
    assert 'python3 -m pytest -m "not slow"' in text
    assert len(text.splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_at_a_file_or_an_output(page: Path) -> None:
    links = [link for link in LINK.findall(page.read_text()) if ":" not in link]
    assert [link for link in links if _broken(page, link)] == []


def test_the_link_check_catches_a_missing_file_heading_and_output(tmp_path: Path) -> None:
    page = REPO / "docs" / "studies.md"
    assert _broken(page, "missing.md") and _broken(page, "outputs.md#no-such-heading")
    assert not _broken(page, "#mtl") and not _broken(page, "../results/tables/table1.md")
    assert _broken(page, "../results/tables/table1")


def test_the_docs_name_papers_by_their_short_names() -> None:
    """docs/studies.md defines them; "ClinicalPrior" reads as a random seed."""
    stale = [p.name for p in PAGES if re.search(r"\b[Ss]eeds? 00\d", p.read_text())]
    assert stale == []


def test_outputs_page_is_generated_from_paths() -> None:
    assert (REPO / "docs" / "outputs.md").read_text() == render()
    text = render()
    assert all(f"`{value}`" in text for _, value, _ in documented_patterns())
    assert f"`{paths.MANIFEST}` | `MANIFEST` |" in text


def test_outputs_check_fails_on_a_stale_page_and_passes_once_written(tmp_path: Path) -> None:
    page = tmp_path / "outputs.md"
    page.write_text(render().replace("MANIFEST", "MANIFESTO"))
    assert main(["--page", str(page), "--check"]) == 1
    assert main(["--page", str(page)]) == 0
    assert main(["--page", str(page), "--check"]) == 0
    assert page.read_text() == render()


def test_a_pattern_without_a_docstring_stops_naming_it(tmp_path: Path) -> None:
    source = tmp_path / "fake_paths.py"
    source.write_text('A = "results/a"\n"""Documented."""\nB = "results/b"\n')
    spec = importlib.util.spec_from_file_location("fake_paths", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(MeddapError, match=r"fake_paths\.py: B lacks its docstring"):
        documented_patterns(module)
