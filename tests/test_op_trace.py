"""`python -m tools.op_trace`: where two CPUs' traces of the same operations part (the tool itself runs in
tests/test_entry_points_run.py)."""
from tools.op_trace import compare, describe, first_difference


def test_first_difference_names_the_first_operation_whose_output_differs():
    mine = ["empty", "randn 1a2b3c4d", "convolution 00aa00aa", "add 11111111"]
    assert first_difference(mine, list(mine)) == {"same": True}
    other = mine[:2] + ["convolution 00bb00bb", "add 22222222"]
    assert first_difference(mine, other) == {"same": False, "index": 2, "op": "convolution",
                                             "other_op": "convolution"}
    assert first_difference(mine, mine[:3]) == {"same": False, "index": 3, "op": "add", "other_op": None}
    assert describe("ae_train", first_difference(mine, other)) == (
        "ae_train: differs from operation #2 (convolution here, convolution there)")


def test_compare_checks_each_phase_and_skips_another_torch():
    record = {"torch": "2.14.1", "threads": 2, "phases": {"a": ["add 1"], "b": ["mul 2"]}}
    others = {"same.json": record | {"phases": {"a": ["add 1"], "b": ["mul 3"]}},
              "old.json": record | {"torch": "2.9.1"}}
    out = compare(record, others)
    assert out["same.json"] == {"a": {"same": True}, "b": {"same": False, "index": 0, "op": "mul", "other_op": "mul"}}
    assert out["old.json"] == {"skipped": "torch 2.9.1, threads 2"}


def test_docs_traces_compares_every_committed_trace_afresh(tmp_path, monkeypatch):
    """The docs table compares the traces with one another when it is built, not from each file's `agrees_with`
    (which knows only the traces that existed when it was written)."""
    import json

    from tools import op_trace

    base = {"torch": "2.14.1", "threads": 2, "cpu": "CPU", "isa": ["avx2"], "commit": "a" * 40, "agrees_with": {},
            "phases": {"base_train": ["convolution 1"], "ae_train": ["convolution 2", "leaky_relu 3"]}}
    traces = {"one": base, "two": base | {"cpu": "Other"},
              "three": base | {"phases": {"base_train": ["convolution 1"], "ae_train": ["convolution 9"]}}}
    for name, record in traces.items():
        (tmp_path / f"op_trace_{name}.json").write_text(json.dumps(record))
    monkeypatch.setattr(op_trace, "FOLDER", tmp_path)
    monkeypatch.setattr(op_trace, "ROOT", tmp_path)
    text = op_trace.docs_traces(lambda rel: json.loads((tmp_path / rel).read_text()))
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert set(rows) == {"one", "two", "three"}
    assert rows["one"].endswith("| 3 | `two` | three: ae_train #0 (convolution) |")
    assert rows["three"].endswith("| 2 | none | one: ae_train #0 (convolution); two: ae_train #0 (convolution) |")
    assert text.rstrip().endswith("`leaky_relu`.")  # the op names only ae_train runs, from the first trace
