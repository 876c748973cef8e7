"""`make verify` (tools/verify.py): a rerun from scratch compared with the committed dvc.lock, stage by stage."""
import pytest
import yaml

from tests.conftest import run
from tools import verify


@pytest.mark.longrun
def test_verify_reruns_the_commit_and_names_the_first_stage_that_differs(tiny_copy, tmp_path):
    """The tiny pipeline rerun on this machine gives the committed bytes, except where the committed lock was
    altered: the train stage's model hash, so train is the first stage that differs and the others agree."""
    lock_path = tiny_copy / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    out = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == "models/base.pt")
    real, out["md5"] = out["md5"], "0123456789abcdef" * 2
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    run("git commit -qam 'a lock with another base model'", tiny_copy)
    code, text = verify.verify(tiny_copy, keep=tmp_path / "kept", out=tmp_path / "outcome.json")
    assert code == 1, text
    lines = text.splitlines()
    assert lines[0].split() == ["prepare", "same", "bytes"]
    assert lines[1].split() == ["train", "DIFFERS"]
    assert all(line.endswith("same bytes") for line in lines[2:lines.index(next(x for x in lines if
                                                                                 x.startswith("verify:")))])
    assert "the first stage that differs is `train`" in text
    assert f"models/base.pt: committed {'0123456789abcdef' * 2}, here {real}" in text
    assert (tmp_path / "kept/dvc.lock").exists()
    outcome = yaml.safe_load((tmp_path / "outcome.json").read_text())
    assert outcome["equal_to_committed"] == {stage: stage != "train" for stage in lock["stages"]}
    assert outcome["outs"]["train"]["models/base.pt"] == real and outcome["cpu"] and outcome["repro_seconds"] >= 0


def test_the_machine_note_says_what_differs_from_the_record():
    here = {"cpu": "AMD EPYC", "isa": ["avx", "avx2"], "arch": "x86_64"}
    recorded = {"kernels": "portable", "cpu": "Intel Xeon", "isa": ["avx", "avx2", "avx512f"]}
    note = verify.machine_note(recorded, "native", here)
    assert "kernel setting differs: committed with portable, here native" in note
    assert "CPU differs: committed on Intel Xeon (avx avx2 avx512f), here AMD EPYC (avx avx2)" in note
    assert verify.machine_note(recorded | here | {"kernels": "native"}, "native", here).startswith("same CPU type")
    assert "missing" in verify.machine_note(None, "native", here)


def test_the_report_blames_torch_or_threads_only_on_a_known_same_machine():
    rows = [{"stage": "train", "same": False, "differ": [{"path": "models/base.pt", "committed": "a", "here": "b"}]}]
    hint = "check the torch version and threads"
    assert hint in verify.report(rows, "same CPU type", same_machine=True)
    assert hint not in verify.report(rows, "CPU differs", same_machine=False)


def test_record_writes_every_output_with_the_machine(tiny_copy):
    entry = verify.record(tiny_copy)
    written = yaml.safe_load((tiny_copy / verify.RECORD).read_text())
    assert written == entry and entry["kernels"] == "native"
    assert entry["outs"]["train"]["models/base.pt"] and entry["cpu"] and "isa" in entry
    assert list(entry["outs"]) == list(yaml.safe_load((tiny_copy / "dvc.lock").read_text())["stages"])


def test_docs_checks_names_the_records_that_give_the_same_bytes(tmp_path, monkeypatch):
    import json

    base = {"cpu": "AMD EPYC", "isa": ["avx2"], "kernels": "portable", "commit": "b" * 40, "repro_seconds": 300,
            "equal_to_committed": {"train": True, "train_ae": False},
            "outs": {"train": {"models/base.pt": "1"}, "train_ae": {"models/ae.pt": "2"}}}
    records = {"a": base, "b": base | {"isa": ["avx2", "avx512f"]},
               "c": base | {"outs": {"train": {"models/base.pt": "1"}, "train_ae": {"models/ae.pt": "3"}}}}
    (tmp_path / verify.RECORD.parent).mkdir(parents=True)
    for name, record in records.items():
        (tmp_path / verify.RECORD.parent / f"verify_{name}.json").write_text(json.dumps(record))
    monkeypatch.setattr(verify, "ROOT", tmp_path)
    text = verify.docs_checks(lambda rel: json.loads((tmp_path / rel).read_text()))
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert rows["a"].endswith("| train | train_ae | `b` |") and rows["b"].endswith("| `a` |")
    assert rows["c"].endswith("| train | train_ae | none |")  # one output differs: not the same bytes
