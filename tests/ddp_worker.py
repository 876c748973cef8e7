"""Run by tests/test_scaleout.py under `torchrun --nproc_per_node=2`: trains a BatchNorm-free MLP on digits with
DDP (gloo) and, on rank 0, the same model in a single process with the same global batch (and, as a control,
with half the batch); rank 0 saves all three weight sets to argv[1]."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from pdiff.base import distributed  # noqa: E402
from pdiff.base.training import LoopContext, train_classifier  # noqa: E402
from pdiff.core.config import TrainConfig  # noqa: E402
from pdiff.core.tracking import Tracker  # noqa: E402


def data() -> dict:
    d = load_digits()
    x = torch.tensor(d.data[:401], dtype=torch.float32) / 16.0
    y = torch.tensor(d.target[:401], dtype=torch.long)
    # 301 training examples: batches of 64 leave a last batch of 45, split 23 / 22 over two ranks
    return {"train_x": x[:301], "train_y": y[:301], "val_x": x[301:], "val_y": y[301:]}


def train(batch_size: int, dist) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    cfg = TrainConfig(epochs=3, batch_size=batch_size, lr=0.1, momentum=0.9, weight_decay=5e-4)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    train_classifier(model, data(), cfg,
                     LoopContext(torch.device("cpu"), torch.Generator().manual_seed(1), Tracker(None), dist=dist))
    return {"init": init, "final": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def main() -> None:
    torch.set_num_threads(1)
    ctx = distributed.init(torch.device("cpu"))
    assert ctx is not None and ctx.world == 2 and ctx.backend == "gloo", ctx
    ddp = train(64, ctx)
    if ctx.is_main:
        torch.save({"ddp": ddp, "single": train(64, None), "half_batch": train(32, None)}, sys.argv[1])
    distributed.finish(ctx)


if __name__ == "__main__":
    main()
