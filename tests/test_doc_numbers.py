"""The numbers README.md and docs/*.md quote from command outputs are the ones in those outputs' JSON files."""
import json
import re

import pytest

from pdiff import PdiffError
from pdiff.generative.fitting import ema_warmup_end
from tools.doc_numbers import ROOT, committed_text, fill, pages


def test_every_marked_number_in_the_pages_is_the_one_in_its_committed_file():
    """Against the files as git records them, not the workspace's: `make repro` on another CPU type rewrites
    metrics/ with that CPU's bytes, and the pages quote the committed run (`git add` a new file to check it)."""
    stale = []
    for path in pages():
        stale += fill(path.read_text(), ROOT, path.name, read=committed_text)[1]
    assert not stale, "\n".join(stale) + "\nrun `python -m tools.doc_numbers`, then `git add` the files it read"


def test_the_committed_state_is_read_from_git_not_from_the_workspace(tmp_path):
    """A file rewritten after its commit (as `make repro` does on another CPU) still reads as committed."""
    from tests.conftest import run

    run(["git", "init", "-q"], tmp_path)
    (tmp_path / "m.json").write_text(json.dumps({"acc": 97.6}))
    run(["git", "add", "m.json"], tmp_path)
    (tmp_path / "m.json").write_text(json.dumps({"acc": 97.5}))
    page = "<!--@ m.json acc -->97.6<!--/@-->"
    assert fill(page, tmp_path, "p.md", read=committed_text)[1] == []
    assert fill(page, tmp_path, "p.md")[1] == ["p.md: m.json acc: the page says '97.6', the file gives '97.5'"]
    (tmp_path / "new.json").write_text(json.dumps({"n": 1}))  # not tracked: the working tree's
    assert fill("<!--@ new.json n -->1<!--/@-->", tmp_path, read=committed_text)[1] == []


def test_the_time_and_test_counts_are_quoted_from_their_files():
    readme = (ROOT / "README.md").read_text()
    testing = (ROOT / "docs/testing.md").read_text()
    assert re.search(r"<!--@ reports/determinism/pipeline_cost_[\w-]+\.json runs\.portable\.seconds", readme)
    for key in ("passed", "skipped", "seconds"):
        assert f"<!--@ metrics/tests.json {key}" in readme and f"<!--@ metrics/tests.json {key}" in testing


def test_fill_replaces_a_wrong_number_and_reports_it(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"a": {"s": 307.4, "n": 1234}}))
    text = ("took <!--@ m.json a.s minsec -->4 min<!--/@--> for <!--@ m.json a.n , -->1,234<!--/@--> "
            "tests, <!--@ m.json a.s .0f -->307<!--/@--> s")
    new, changed = fill(text, tmp_path, "page.md")
    assert new == text.replace("-->4 min<", "-->5 min 07 s<")
    assert changed == ["page.md: m.json a.s: the page says '4 min', the file gives '5 min 07 s'"]
    with pytest.raises(PdiffError, match="a.missing"):
        fill("<!--@ m.json a.missing -->1<!--/@-->", tmp_path)


def test_a_list_row_is_named_by_a_key_never_by_position(tmp_path):
    rows = {"seeds": [{"seed": 0, "acc": 97.4}, {"seed": 1, "acc": 97.6}, {"seed": 1, "acc": 1.0}],
            "runs": [{"name": "code=step, width 512", "l2": 0.149}]}
    (tmp_path / "r.json").write_text(json.dumps(rows))
    page = ("<!--@ r.json seeds[seed=0].acc -->97.4<!--/@--> "
            "<!--@ r.json runs[name=code=step, width 512].l2 -->0.1<!--/@-->")
    new, changed = fill(page, tmp_path, "p.md")
    assert new == page.replace("-->0.1<", "-->0.149<") and len(changed) == 1
    with pytest.raises(PdiffError, match=r"by position \(`0`\).*seeds\[seed=0\]"):
        fill("<!--@ r.json seeds.0.acc -->97.4<!--/@-->", tmp_path, "p.md")
    with pytest.raises(PdiffError, match=r"\[seed=1\] matches 2 rows"):
        fill("<!--@ r.json seeds[seed=1].acc -->97.6<!--/@-->", tmp_path, "p.md")
    with pytest.raises(PdiffError, match=r"\[seed=0\] matches 0 rows"):
        fill("<!--@ r.json runs[seed=0].l2 -->0<!--/@-->", tmp_path, "p.md")


def test_a_generated_block_is_refilled_from_its_function():
    """A block names a tools function; a stale body is reported and replaced, a source outside tools/ refused."""
    from tools.kernel_pins import docs_table

    table = docs_table(lambda p: json.loads((ROOT / p).read_text()))
    assert table.startswith("| setting |") and "131cf66e" in table
    page = "before\n<!--@@ tools.kernel_pins:docs_table -->\nold\n<!--/@@-->\nafter"
    new, changed = fill(page, ROOT, "p.md")
    assert new == f"before\n<!--@@ tools.kernel_pins:docs_table -->\n{table}<!--/@@-->\nafter"
    assert changed == ["p.md: the block tools.kernel_pins:docs_table is not what its files give"]
    assert fill(new, ROOT, "p.md")[1] == []
    with pytest.raises(PdiffError, match="in tools/"):
        fill("<!--@@ os.path:join -->\nx\n<!--/@@-->", ROOT, "p.md")


@pytest.mark.parametrize("name, every_seed", [("docs_seeds_table", True), ("docs_decoder_table", True),
                                              ("docs_block_table", False), ("docs_generators_table", False)])
def test_the_results_tables_name_each_seed_not_its_position(name, every_seed):
    """The tables tools.paper_scale builds for the docs read a seed's entry by its seed: with the results files'
    seeds listed in reverse order (and, for a one-seed table, another seed's entry put first), they are the same."""
    from tools import paper_scale

    def load(path, shuffled=False):
        data = json.loads((ROOT / path).read_text())
        if shuffled:
            data["seeds"] = data["seeds"][::-1] if every_seed else [{"seed": 7}, *data["seeds"]]
        return data

    build = getattr(paper_scale, name)
    table = build(load)
    assert table.startswith("| ") and table.endswith(" |\n") and table.count("\n") >= 4
    assert build(lambda path: load(path, shuffled=True)) == table


def test_ema_warm_up_thresholds_in_the_docs_are_the_formulas():
    text = (ROOT / "docs/paper-scale.md").read_text()
    for decay in (0.999, 0.9999):
        assert f"{ema_warmup_end(decay):,} for {decay}" in text
    assert f"ending at {(1 + 1500) / (10 + 1500):.3f}" in text


def test_layout_inventories_name_every_module_tool_and_report_folder():
    """README's layout and docs/architecture.md list every library module, tool and report folder."""
    readme = (ROOT / "README.md").read_text()
    architecture = (ROOT / "docs/architecture.md").read_text()
    modules = [f.stem for f in (ROOT / "pdiff").glob("*/*.py") if f.stem != "__init__"]
    tools = [f.stem for f in (ROOT / "tools").glob("*.py") if f.stem != "__init__"]
    reports = [d.name for d in (ROOT / "reports").iterdir() if d.is_dir()]
    missing = [f"architecture.md: {m}" for m in modules + tools + reports if f"`{m}" not in architecture]
    missing += [f"README.md: {m}" for m in tools + reports if m not in readme]
    assert not missing, missing


def test_junit_counts_split_passed_skipped_and_failed(tmp_path):
    from tools.test_counts import junit_counts

    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="10" skipped="2" failures="1" errors="1" '
                   'time="3.0"></testsuite></testsuites>')
    assert junit_counts(xml) == {"tests": 10, "passed": 6, "skipped": 2, "failed": 2}


def test_junit_slowest_lists_the_slowest_cases_first(tmp_path):
    from tools.test_counts import junit_slowest

    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="3">'
                   '<testcase classname="tests.test_a" name="test_x" time="1.25"/>'
                   '<testcase classname="tests.test_b" name="test_y[2]" time="30.04"/>'
                   '<testcase classname="tests.test_a" name="test_z" time="0.01"/></testsuite></testsuites>')
    assert junit_slowest(xml, n=2) == [{"test": "tests/test_b.py::test_y[2]", "seconds": 30.0},
                                       {"test": "tests/test_a.py::test_x", "seconds": 1.2}]
