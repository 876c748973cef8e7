"""`python -m tools.conv_rewrites`: the rewrites it compares are convolutions, and it finds the default model's
(the tool itself runs in tests/test_entry_points_run.py)."""
import json

import pytest
import torch

from tools import conv_rewrites
from tools.conv_rewrites import PASSES, PATHS, conv_inputs, portable_path, unfold_gemm


@pytest.mark.parametrize("shape, padding", [((3, 4, 9, 7), 1), ((2, 1, 6, 6), 0)])
def test_each_path_computes_the_convolution_and_both_gradients(shape, padding):
    """Every path gives F.conv2d's output and gradients to rounding (what they may differ in is the last bits)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    w = torch.randn((5, shape[1], 3, 3), generator=gen, dtype=torch.float64)
    out_shape = (shape[0], 5, shape[2] + 2 * padding - 2, shape[3] + 2 * padding - 2)
    grad = torch.randn(out_shape, generator=gen, dtype=torch.float64)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = torch.nn.functional.conv2d(xr, wr, padding=padding)
    out.backward(grad)
    for name, fn in PATHS.items():
        got = fn(x, w, grad, padding)
        for ps, a, b in zip(PASSES, got, (out.detach(), xr.grad, wr.grad), strict=True):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-10), (name, ps)
    assert torch.equal(unfold_gemm(x, w, grad, padding)[0], unfold_gemm(x, w, grad, padding)[0])  # deterministic
    assert torch.equal(portable_path(x, w, grad, padding)[2], wr.grad)


def test_conv_inputs_are_the_default_models_convolutions_at_the_training_batch():
    from pdiff.core.config import load_params

    p = load_params("params.yaml")
    layers = conv_inputs(p)
    assert [r["layer"] for r in layers] == ["conv1", "conv2", "conv3"]
    w = p.model.width
    assert layers[0]["input"] == [p.train.batch_size, 1, 28, 28] and layers[0]["weight"] == [w, 1, 3, 3]
    assert layers[1]["input"] == [p.train.batch_size, w, 14, 14] and layers[2]["input"][2:] == [7, 7]
    assert all(r["padding"] == 1 for r in layers)


def test_docs_table_has_a_row_per_layer_and_marks_other_bytes(tmp_path, monkeypatch):
    record = {"cpu": "Some CPU", "layers": [
        {"layer": "conv1", "input": [64, 1, 28, 28],
         "same_bytes": {"unfold_gemm": dict.fromkeys(PASSES, True),
                        "channels_last": {"forward": False, "grad_input": True, "grad_weight": True}},
         "over_portable": {"unfold_gemm": 1.5, "channels_last": 0.5}}]}
    (tmp_path / "conv_rewrites_some.json").write_text(json.dumps(record))
    monkeypatch.setattr(conv_rewrites, "FOLDER", tmp_path)
    monkeypatch.setattr(conv_rewrites, "ROOT", tmp_path)
    table = conv_rewrites.docs_table(lambda path: json.loads((tmp_path / path).read_text()))
    row = table.strip().splitlines()[-1]
    assert row == "| Some CPU | `conv1` 64x1x28x28 | same / same / same | **other** / same / same | x1.50 | x0.50 |"
