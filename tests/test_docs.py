"""The front page and docs/: links resolve, the README stays short, every published table has its one section."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from fer_utils.config import ROOT
from fer_utils.report import HEADLINE, README_MD, RESULTS_MD, headline, sections

README_LIMIT = 12 * 1024  # bytes: a front page a newcomer reads in two minutes
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PUBLISH = re.compile(r"""\bpublish\(\s*cfg\s*,\s*["']([\w-]+)["']""")


def _fenced_out(text: str) -> str:
    """The text without its fenced code blocks (a '# comment' there is no heading, a link no link)."""
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)


def _prose(text: str) -> str:
    """The Markdown outside fenced code blocks and inline code, where links are links."""
    return re.sub(r"`[^`\n]*`", "", _fenced_out(text))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page: lower case, punctuation dropped, spaces as hyphens."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _fenced_out(page.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _published_names() -> dict[str, list[str]]:
    """Section name -> the notebooks whose code calls ``publish(cfg, "name", ...)``."""
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for name in PUBLISH.findall(cell.source):
                    names.setdefault(name, []).append(path.name)
    return names


def test_pages_exist():
    assert (ROOT / RESULTS_MD).is_file() and len(PAGES) >= 6, PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    """Files exist (relative to the page); an anchor names a heading of its target page."""
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: — not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file {file}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_anchor_slugs_follow_github():
    """The slug rule the link test relies on, on headings of the kinds these pages use."""
    page = ROOT / "docs" / "results.md"
    assert {"experiment-3-real--k--generated-faces-table-2-06_cross_eval", "how-much-one-seed-moves",
            "table-3-vgg16-and-the-literature-07_sota"} <= _anchors(page)
    assert "training-your-own-train-gan---init" in _anchors(ROOT / "docs" / "generators.md")


def test_readme_is_a_front_page():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size:,} bytes; move detail to docs/ (limit {README_LIMIT:,})"


def test_every_published_table_has_exactly_one_section_where_publish_writes_it():
    names = _published_names()
    assert {"exp1", "exp2", "table2", "table3", "cross_eval", "gan_quality"} <= set(names), names
    text = (ROOT / RESULTS_MD).read_text()
    for name, notebooks in names.items():
        for marker in (f"<!-- results:{name} -->", f"<!-- /results:{name} -->"):
            count = text.count(marker)
            assert count == 1, f"{marker} (written by {', '.join(notebooks)}) appears {count}x in {RESULTS_MD}"


def test_readme_holds_only_the_derived_headline():
    """The README's one regenerated section is what publish derives from docs/results.md, never typed by hand."""
    readme = (ROOT / README_MD).read_text()
    assert readme.count(f"<!-- results:{HEADLINE} -->") == 1 and readme.count(f"<!-- /results:{HEADLINE} -->") == 1
    assert set(sections(readme)) == {HEADLINE}
    assert sections(readme)[HEADLINE] == headline(sections((ROOT / RESULTS_MD).read_text())).strip()


def test_readme_headline_found_every_number_it_shows():
    """Each 'ours' cell came from a row of docs/results.md: a renamed row there would show up as '–' here."""
    rows = [line.split(" | ") for line in sections((ROOT / README_MD).read_text())[HEADLINE].splitlines()
            if line.startswith("| ") and not line.startswith("| trained on")]
    assert len(rows) == 4 and all(row[2] != "–" and row[4].rstrip(" |") != "–" for row in rows), rows
