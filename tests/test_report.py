"""Result tables: sections replaced in place, tables into docs/results.md, a derived headline into the README."""
import pytest

from fer_utils import report
from fer_utils.config import WORLD_MANIFEST, load_config
from fer_utils.report import headline, markdown_table, pct, publish, sections, update_section

EXP1 = markdown_table(("accuracy", "paper", "this run"),
                      [["train", "84.5 %", "90.0 % [89.0, 91.0] (n=1)"], ["mmi", "45.0 %", "61.0 % [57.0, 65.0] (n=1)"],
                       ["ckplus", "–", "77.0 % [75.0, 79.0] (n=1)"]])
EXP2 = markdown_table(("accuracy", "paper", "this run"),
                      [["mmi", "47.0 %", "40.0 % [36.0, 44.0] (n=1)"], ["ckplus", "–", "45.0 % [42.0, 48.0] (n=1)"]])
TABLE3 = markdown_table(("model", "MMI", "CK+"), [
    ["CNN, real (*this run*)", "61.0 % [57.0, 65.0] (n=1)", "77.0 % [75.0, 79.0] (n=1)"],
    ["CNN, real + 3 x generated (k best on real validation) (*this run*)", "70.0 % [66.0, 74.0] (n=2)",
     "86.0 % [84.0, 88.0] (n=2)"],
    ["VGG16, real (*this run*)", "50.0 % [46.0, 54.0] (n=1)", "55.0 % [52.0, 58.0] (n=1)"],
    ["VGG16, real (paper)", "54.1 %", "–"],
    ["CNN, real + 5 x generated (paper)", "58.3 %", "87.5 %"],
    ["Gu et al., 2012, trained on JAFFE (quoted by the paper)", "–", "54.0 %"]])


def test_pct_formats_value_and_ci():
    assert pct(0.4567) == "45.7 %"
    assert pct(0.5, (0.4, 0.6)) == "50.0 % [40.0, 60.0]"
    assert pct(None) == "–"


def test_markdown_table_shape():
    table = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_update_section_replaces_only_between_markers(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("intro\n<!-- results:exp1 -->\nold\n<!-- /results:exp1 -->\noutro\n")
    assert update_section(doc, "exp1", "new table")
    assert doc.read_text() == "intro\n<!-- results:exp1 -->\nnew table\n<!-- /results:exp1 -->\noutro\n"
    assert not update_section(doc, "exp9", "x")


def test_sections_reads_every_body_by_name():
    text = "a\n<!-- results:exp1 -->\none\n<!-- /results:exp1 -->\nb\n<!-- results:t3 -->\nx\ny\n<!-- /results:t3 -->\n"
    assert sections(text) == {"exp1": "one", "t3": "x\ny"}


def test_headline_takes_cross_database_cells_from_the_sections():
    """Paper and ours for MMI and CK+, intervals dropped; k read from Table 3's label; the literature left out."""
    body = headline({"exp1": "*E1* — preset `default`, Linux x86_64, 2 cpu, GPU: none.\nData: rafd: embedded world.\n\n"
                             + EXP1, "exp2": EXP2, "table3": TABLE3})
    rows = body.split("\n\n")[1].splitlines()
    assert rows[0] == "| trained on | MMI: paper | MMI: ours | CK+: paper | CK+: ours |"
    assert rows[2] == "| real faces (RaFD + Oulu-CASIA) | 45.0 % | 61.0 % (n=1) | – | 77.0 % (n=1) |"
    assert rows[3] == "| generated faces only | 47.0 % | 40.0 % (n=1) | – | 45.0 % (n=1) |"
    assert rows[4] == ("| real + k × generated (paper: k = 5; ours: k = 3, best on real validation) "
                       "| 58.3 % | 70.0 % (n=2) | 87.5 % | 86.0 % (n=2) |")
    assert rows[5] == "| VGG16, real faces | 54.1 % | 50.0 % (n=1) | – | 55.0 % (n=1) |"
    assert len(rows) == 6 and "JAFFE" not in body
    assert "(preset `default`, Linux x86_64, 2 cpu, GPU: none)" in body and "\nData: rafd: embedded world." in body


def test_headline_marks_what_no_section_holds():
    rows = headline({"exp1": EXP1}).split("\n\n")[1].splitlines()
    assert rows[3] == "| generated faces only | – | – | – | – |"
    assert "ours: k = –" in rows[4]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root holding a README with a headline section and docs/results.md with three table sections."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# front\n<!-- results:headline -->\nold\n<!-- /results:headline -->\nend\n")
    (tmp_path / "docs" / "results.md").write_text("".join(
        f"## {name}\n<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->\nreading\n"
        for name, body in (("exp1", "stale"), ("exp2", EXP2), ("table3", TABLE3))))
    monkeypatch.setattr(report, "ROOT", tmp_path)
    return tmp_path


def _cfg(root, figures):
    return load_config("quick", {"results_dir": str(root / "results"), "figures_dir": str(root / figures)})


def test_publish_default_run_fills_results_doc_and_derives_the_readme_headline(project):
    path = publish(_cfg(project, "figures"), "exp1", "Experiment 1", EXP1)
    assert path == project / "results" / "tables" / "exp1.md" and EXP1 in path.read_text()
    docs = sections((project / "docs" / "results.md").read_text())
    assert EXP1 in docs["exp1"] and docs["exp1"].startswith("*Experiment 1* — preset `quick`")
    assert docs["table3"] == TABLE3  # the other sections untouched
    readme = (project / "README.md").read_text()
    assert readme.startswith("# front\n") and readme.endswith("\nend\n")
    assert sections(readme) == {"headline": headline(docs).strip()}
    assert "| real faces (RaFD + Oulu-CASIA) | 45.0 % | 61.0 % (n=1) |" in readme
    assert "| train |" not in readme  # the full table stays in docs/results.md


def test_publish_other_runs_leave_the_committed_docs_alone(project):
    before = {p: p.read_text() for p in (project / "README.md", project / "docs" / "results.md")}
    path = publish(_cfg(project, "results/quick/figures"), "exp1", "Experiment 1", EXP1)
    assert EXP1 in path.read_text()
    assert {p: p.read_text() for p in before} == before


def test_publish_warns_when_the_results_doc_lacks_the_section(project):
    with pytest.warns(UserWarning, match=r"no <!-- results:exp9 --> section.*exp9\.md"):
        path = publish(_cfg(project, "figures"), "exp9", "Nine", EXP1)
    assert path.is_file()


def test_publish_refuses_the_derived_headline_name(project):
    with pytest.raises(ValueError, match="headline"):
        publish(_cfg(project, "figures"), "headline", "Headline", EXP1)


def test_publish_names_where_the_tables_own_databases_came_from(project):
    """Notebook 01's quality table rests on AffectNet and FFHQ, read before 02 writes the experiments' databases."""
    world = project / "world_ffhq"
    world.mkdir()
    (world / WORLD_MANIFEST).write_text("{}")
    cfg = load_config("quick", {"results_dir": str(project / "results"), "figures_dir": str(project / "figures"),
                                "data.affectnet": str(project / "mine"), "data.ffhq": str(world)})
    publish(cfg, "exp2", "Quality", EXP2, databases=("affectnet", "ffhq"))
    body = sections((project / "docs" / "results.md").read_text())["exp2"]
    assert body.splitlines()[1] == "Data: affectnet: your files; ffhq: embedded world."
    publish(cfg, "exp2", "Experiment 2", EXP2)  # by default the experiments' four
    line = sections((project / "docs" / "results.md").read_text())["exp2"].splitlines()[1]
    assert [part.split(":")[0] for part in line.removeprefix("Data: ").split("; ")] == ["rafd", "oulu", "mmi", "ckplus"]


def test_publish_names_an_unknown_database_before_writing(project):
    before = (project / "docs" / "results.md").read_text()
    with pytest.raises(ValueError, match=r"unknown database\(s\) 'afectnet'.*known: rafd"):
        publish(_cfg(project, "figures"), "exp2", "Quality", EXP2, databases=("afectnet", "ffhq"))
    assert (project / "docs" / "results.md").read_text() == before
    assert not (project / "results" / "tables" / "exp2.md").exists()
