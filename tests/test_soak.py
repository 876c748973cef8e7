"""The pure parts of the kill-anywhere soak (tools/soak.py); the soak itself is `make soak`, not a test."""
from tools.soak import differences, kill_times, stage_at, stage_starts


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
