"""Write an embedded dataset as a tensors file (`data.name: tensors`), the format for your own data:

    python -m tools.export_tensors mnist5k data/raw/mnist5k.npz   # 4,000 train + 1,000 test, uint8 28x28
    python -m tools.export_tensors digits data/raw/digits.pt       # scikit-learn's 8x8 digits, float32

The file holds train_x, train_y, test_x, test_y (images [N, 1, H, W], integer labels); the test split is a
seeded draw of --test-size examples. It is the example input of docs/own-model.md and a template: write your
own arrays under the same keys (optionally val_x, val_y) with numpy.savez or torch.save.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pdiff.core.artifacts import save_torch, write_atomic
from pdiff.core.stage import run_script
from pdiff.data.prepare import DATASETS


def export(name: str, out: Path, test_size: int, seed: int) -> dict:
    x, y = DATASETS[name]("")
    x = np.asarray(x, dtype=np.float32)
    if name == "mnist5k":  # stored as k / 255: back to the exact uint8 pixels
        x = np.rint(x * 255).astype(np.uint8)
    perm = np.random.default_rng(seed).permutation(len(x))
    test, train = perm[:test_size], perm[test_size:]
    arrays = {"train_x": x[train], "train_y": np.asarray(y)[train].astype(np.int64),
              "test_x": x[test], "test_y": np.asarray(y)[test].astype(np.int64)}
    if out.suffix == ".npz":
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        write_atomic(out, write)
    else:
        save_torch({k: torch.from_numpy(v) for k, v in arrays.items()}, out)
    return arrays


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("out", type=Path, help="a .npz or .pt file")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    arrays = export(args.dataset, args.out, args.test_size, args.seed)
    print(", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in arrays.items()) + f" -> {args.out}")


if __name__ == "__main__":
    run_script(main)
