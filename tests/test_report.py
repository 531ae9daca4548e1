"""README result sections are replaced in place and nothing else is touched."""
from fer_utils.report import markdown_table, pct, update_readme_section


def test_pct_formats_value_and_ci():
    assert pct(0.4567) == "45.7 %"
    assert pct(0.5, (0.4, 0.6)) == "50.0 % [40.0, 60.0]"
    assert pct(None) == "–"


def test_markdown_table_shape():
    table = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_update_readme_section_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:exp1 -->\nold\n<!-- /results:exp1 -->\noutro\n")
    assert update_readme_section(readme, "exp1", "new table")
    assert readme.read_text() == "intro\n<!-- results:exp1 -->\nnew table\n<!-- /results:exp1 -->\noutro\n"
    assert not update_readme_section(readme, "exp9", "x")
