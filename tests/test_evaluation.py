import pytest
import torch

from pdiff import PdiffError
from pdiff.analysis.evaluation import (
    EvalOptions,
    evaluate_sets,
    evaluate_vectors,
    finite_rows,
    load_correctness,
    load_evaluation,
    predict_sets,
    predict_vectors,
    save_correctness,
    split_at_selection,
    summarize,
)
from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import flatten, select


def _model_and_vectors(m=6):
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 8).eval()
    names = select(model, "auto")
    base = flatten(model, names)
    vectors = base + 0.5 * torch.randn(m, base.numel())
    x, y = torch.randn(50, 1, 12, 12), torch.randint(10, (50,))
    return model, names, vectors, x, y


def test_cached_prefix_gives_identical_predictions_and_restores_model():
    model, names, vectors, x, y = _model_and_vectors()
    before = flatten(model, names)
    fast = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16))
    slow = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16, cache_prefix=False))
    assert torch.equal(fast, slow)
    assert torch.equal(flatten(model, names), before)
    assert fast.float().mean(1).std() > 0  # the vectors really differ


def test_split_puts_no_selected_parameter_in_prefix():
    model = SmallCNN(1, 10, 8)
    prefix, suffix = split_at_selection(model, ["bn3.weight"])
    prefix_names = {n for n, _ in prefix.named_parameters()}
    assert "bn3.weight" not in prefix_names and "conv3.weight" in prefix_names


def test_nan_vectors_are_not_run_and_counted_as_failed():
    model, names, vectors, x, y = _model_and_vectors(3)
    vectors[1, 0] = float("nan")
    correct = evaluate_vectors(model, names, vectors, x, y)
    assert not correct[1].any()
    s = summarize([90.0, 92.0], failed=1)
    assert s["count"] == 2 and s["failed"] == 1 and s["acc_median"] == 91.0 and s["acc_max"] == 92.0


def test_summarize_statistics():
    s = summarize(torch.tensor([1.0, 2.0, 3.0, 10.0]))
    assert s == {"count": 4, "failed": 0, "acc_mean": 4.0, "acc_median": 2.5, "acc_max": 10.0, "acc_min": 1.0,
                 "acc_std": round(float(torch.tensor([1.0, 2, 3, 10]).std(unbiased=False)), 4)}


def test_evaluate_sets_equals_one_call_per_set():
    model, names, vectors, x, y = _model_and_vectors(7)
    sets = {"a": vectors[:4], "b": vectors[4:], "empty": vectors[:0]}
    together = evaluate_sets(model, names, sets, x, y, EvalOptions(batch_size=16))
    assert list(together) == ["a", "b", "empty"]
    for key, vecs in sets.items():
        assert torch.equal(together[key], evaluate_vectors(model, names, vecs, x, y, EvalOptions(batch_size=16)))
    assert together["empty"].shape == (0, len(y))


def test_stored_correctness_is_returned_only_for_the_vectors_and_labels_it_belongs_to(tmp_path):
    model, names, vectors, x, y = _model_and_vectors(5)
    vectors[2, 0] = float("nan")
    ok = finite_rows(vectors)
    correct = evaluate_vectors(model, names, vectors[ok], x, y)
    path = str(tmp_path / "correctness.pt")
    save_correctness({"original": (vectors, correct)}, y, path)
    assert torch.equal(load_correctness("original", vectors, y, path), correct)
    other = vectors.clone()
    other[0, 0] += 1e-3
    with pytest.raises(PdiffError, match="other vectors.*dvc repro evaluate"):
        load_correctness("original", other, y, path)
    with pytest.raises(PdiffError, match="another test split"):
        load_correctness("original", vectors, (y + 1) % 10, path)
    with pytest.raises(PdiffError, match="no results for `generated`"):
        load_correctness("generated", vectors, y, path)
    with pytest.raises(PdiffError, match="missing.*`evaluate` stage"):
        load_correctness("original", vectors, y, str(tmp_path / "absent.pt"))


def test_stored_predictions_are_the_classes_behind_the_correctness(tmp_path):
    model, names, vectors, x, y = _model_and_vectors(5)
    vectors[2, 0] = float("nan")
    ok = finite_rows(vectors)
    predicted = predict_vectors(model, names, vectors, x)
    assert (predicted[~ok] == -1).all() and torch.equal(predicted == y, evaluate_vectors(model, names, vectors, x, y))
    assert torch.equal(predict_sets(model, names, {"a": vectors[ok]}, x)["a"], predicted[ok])
    path = str(tmp_path / "correctness.pt")
    save_correctness({"original": (vectors, predicted[ok] == y)}, y, path, {"original": predicted[ok]})
    stored = torch.load(path, weights_only=True)["methods"]["original"]["predicted"]
    assert stored.dtype == torch.int16  # ten classes: the small type
    correct, classes = load_evaluation("original", vectors, y, path)
    assert torch.equal(classes, predicted[ok]) and classes.dtype == torch.long and torch.equal(correct, classes == y)
    save_correctness({"original": (vectors, predicted[ok] == y)}, y, path)  # as an older `evaluate` wrote it
    assert torch.equal(load_correctness("original", vectors, y, path), correct)
    with pytest.raises(PdiffError, match="no `predicted` results.*dvc repro evaluate"):
        load_evaluation("original", vectors, y, path)



def test_evaluation_subset_cuts_validation_and_test_only():
    """evaluate.max_examples: the first N examples of the validation and test splits (a fixed subset), the
    training split untouched; 0 keeps everything."""
    from pdiff.data.prepare import evaluation_subset

    data = {f"{s}_{p}": torch.arange(10) for s in ("train", "val", "test") for p in ("x", "y")} | {"num_classes": 2}
    cut = evaluation_subset(data, 4)
    assert [len(cut[k]) for k in ("train_x", "val_x", "val_y", "test_x", "test_y")] == [10, 4, 4, 4, 4]
    assert torch.equal(cut["test_x"], torch.arange(4)) and cut["num_classes"] == 2
    assert evaluation_subset(data, 0) is data


def test_finite_rows_checked_in_column_chunks_finds_every_bad_value():
    torch.manual_seed(1)
    vectors = torch.randn(5, 37)
    vectors[1, 36], vectors[3, 0], vectors[4, 18] = float("nan"), float("inf"), float("-inf")
    expected = torch.tensor([True, False, True, False, False])
    for chunk in (1, 5, 37, 1 << 24):  # one column per chunk, a ragged last chunk, exactly one chunk, one pass
        assert torch.equal(finite_rows(vectors, chunk_values=chunk), expected)
    assert finite_rows(torch.zeros(3, 0)).all() and finite_rows(torch.zeros(0, 4)).numel() == 0
