import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import flatten, load_vector, select, shapes_of, unflatten


def test_auto_selects_last_two_norm_layers():
    model = SmallCNN(1, 10, 16)
    names = select(model, "auto")
    assert names == ["bn3.weight", "bn3.bias", "bn4.weight", "bn4.bias"]
    assert flatten(model, names).numel() == 192


def test_patterns_select_in_model_order():
    model = SmallCNN(1, 10, 16)
    assert select(model, ["bn4.*", "bn1.w*"]) == ["bn1.weight", "bn4.weight", "bn4.bias"]


def test_load_vector_changes_exactly_the_selected_parameters():
    model = SmallCNN(1, 10, 8)
    names = select(model, "auto")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vec = torch.randn(flatten(model, names).numel())
    load_vector(model, names, vec)
    after = model.state_dict()
    for k in before:
        if k in names:
            assert not torch.equal(before[k], after[k]), k
        else:
            assert torch.equal(before[k], after[k]), k
    assert torch.equal(flatten(model, names), vec)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=5), st.integers(0, 100))
def test_flatten_unflatten_round_trip(shapes, seed):
    gen = torch.Generator().manual_seed(seed)
    model = nn.Module()
    for i, s in enumerate(shapes):
        model.register_parameter(f"p{i}", nn.Parameter(torch.randn(s, generator=gen)))
    names = [f"p{i}" for i in range(len(shapes))][::2]
    vec = flatten(model, names)
    back = unflatten(vec, names, shapes_of(model, names))
    for n in names:
        assert torch.equal(back[n], getattr(model, n).detach())
