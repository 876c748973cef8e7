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
