import pytest
import torch

from pdiff import PdiffError
from pdiff.base.training import LoopContext, collect_snapshots, snapshot_steps
from pdiff.core.config import CollectConfig
from pdiff.core.tracking import Tracker
from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import flatten, select


def test_snapshot_steps_are_even_distinct_and_end_at_the_last_step():
    steps = snapshot_steps(219, 200)
    assert len(set(steps)) == 200 and steps[-1] == 219 and steps == sorted(steps)
    assert snapshot_steps(10, 5) == [2, 4, 6, 8, 10]
    with pytest.raises(PdiffError, match="collect.num_snapshots"):
        snapshot_steps(10, 11)


def test_collect_trains_only_the_selection_and_freezes_running_stats():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 4)
    data = {"train_x": torch.randn(40, 1, 8, 8), "train_y": torch.randint(10, (40,))}
    names = select(model, "auto")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = CollectConfig(num_snapshots=5, lr=0.1, batch_size=8, epochs=1)
    ctx = LoopContext("cpu", torch.Generator().manual_seed(0), Tracker(None))
    snaps, steps = collect_snapshots(model, data, names, cfg, ctx)
    assert snaps.shape == (5, flatten(model, names).numel()) and steps == [1, 2, 3, 4, 5]
    assert torch.equal(snaps[-1], flatten(model, names))
    assert not torch.equal(snaps[0], snaps[-1])
    after = model.state_dict()
    for k in before:
        if k not in names:
            assert torch.equal(before[k], after[k]), k  # incl. running_mean / running_var


def test_fit_decays_the_learning_rate_on_a_cosine_to_zero():
    import math
    from types import SimpleNamespace

    from pdiff.generative.fitting import fit

    w = torch.nn.Parameter(torch.zeros(1))
    module = torch.nn.Module()
    module.w = w
    seen = []

    def batch_loss():  # constant gradient 1: each Adam step moves w by (almost exactly) that step's lr
        seen.append(w.item())
        return w.sum()

    cfg = SimpleNamespace(steps=8, lr=0.1, weight_decay=0.0)
    fit(module, batch_loss, cfg, Tracker(None), "cosine")
    seen.append(w.item())
    moves = [a - b for a, b in zip(seen, seen[1:], strict=False)]
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)]
    assert moves == pytest.approx(expected, rel=1e-4, abs=1e-7)
