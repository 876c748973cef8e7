"""The pure parts of the kill-anywhere soak (tools/soak.py); the soak itself is `make soak`, not a test."""
from tools.soak import differences, kill_plan, kill_times, stage_at, stage_starts, stage_windows


def test_kill_times_are_seeded_and_inside_the_run():
    times = kill_times(3, 50, 80.0)
    assert times == kill_times(3, 50, 80.0) and times != kill_times(4, 50, 80.0)
    assert len(times) == 50 and all(0.0 <= t <= 80.0 for t in times)


def test_stage_at_kill_is_the_last_stage_started_before_it():
    lines = [(0.4, "Verifying data sources in stage: 'data/raw.dvc'"), (1.0, "Running stage 'prepare':"),
             (1.1, "> python stages/prepare.py"), (5.0, "Running stage 'train':"), (30.0, "Running stage 'collect':")]
    starts = stage_starts(lines)
    assert starts == [(1.0, "prepare"), (5.0, "train"), (30.0, "collect")]
    assert stage_at(starts, 0.5) is None  # dvc still starting up
    assert stage_at(starts, 4.9) == "prepare" and stage_at(starts, 5.0) == "train" and stage_at(starts, 99) == "collect"


def test_differences_name_missing_extra_and_changed_files():
    ref = {"a.json": b"1", "b.json": b"2", "c.json": b"3"}
    assert differences(ref, dict(ref)) == []
    assert differences(ref, {"a.json": b"1", "b.json": b"X", "d.json": b"4"}) == ["b.json", "c.json", "d.json"]


# a clean run's stages as `make soak` sees them on the default: two short stages among long ones
WINDOWS = stage_windows([(1.0, "prepare"), (2.5, "train"), (12.0, "collect"), (30.0, "train_ae"),
                         (60.0, "train_ldm"), (80.0, "generate"), (88.0, "evaluate"), (90.0, "analyze")], 100.0)


def test_stage_windows_end_where_the_next_stage_starts():
    assert WINDOWS[0] == ("prepare", 1.0, 2.5) and WINDOWS[-1] == ("analyze", 90.0, 100.0)


def test_kill_plan_aims_once_inside_every_stage_then_uniformly():
    for seed in range(5):
        plan = kill_plan(seed, 20, 100.0, WINDOWS)
        assert plan == kill_plan(seed, 20, 100.0, WINDOWS) and len(plan) == 20
        aimed = [k for k in plan if k["stage"] is not None]
        assert sorted(k["stage"] for k in aimed) == sorted(s for s, _, _ in WINDOWS)  # each stage exactly once
        for k in aimed:
            start, end = next((a, b) for s, a, b in WINDOWS if s == k["stage"])
            assert 0.1 * (end - start) <= k["after_s"] <= 0.9 * (end - start)  # lands inside the stage
        rest = [k["at_s"] for k in plan if k["stage"] is None]
        assert len(rest) == 12 and all(0.0 <= t <= 100.0 for t in rest)
    assert kill_plan(0, 20, 100.0, WINDOWS) != kill_plan(1, 20, 100.0, WINDOWS)


def test_kill_plan_with_fewer_rounds_than_stages_aims_at_distinct_stages():
    plan = kill_plan(3, 5, 100.0, WINDOWS)
    assert len(plan) == 5 and len({k["stage"] for k in plan}) == 5 and all(k["stage"] for k in plan)


def test_docs_soak_table_matches_the_committed_summary():
    """docs/testing.md's round table is reports/soak/soak.json's rounds, one row each, in order."""
    import json

    from tests.conftest import ROOT

    summary = json.loads((ROOT / "reports/soak/soak.json").read_text())
    doc = (ROOT / "docs/testing.md").read_text()
    table = doc.split("generated from reports/soak/soak.json; tests/test_soak.py checks it -->")[1].split("\n\n")[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert len(rows) == summary["rounds_done"] == len(summary["rounds"])
    for row, r in zip(rows, summary["rounds"], strict=True):
        assert row == (f"| {r['round']} | {r['aimed_at']['stage'] or 'anywhere'} | {r['kill_at_s']:.1f} | "
                       f"{r['stage_at_kill']} | {r['recovery_s']:.1f} | {', '.join(r['stages_rerun']) or '—'} | "
                       f"{'yes' if r['ok'] else 'no'} |")
