"""Write a synthetic CIFAR-10/100 of the real size in the real on-disk format (python pickle batches), for
timing the presets on a machine that cannot download the real data:

    python -m tools.synthetic_cifar data/raw              # cifar-10-batches-py, 50,000 + 10,000 images
    python -m tools.synthetic_cifar data/raw --cifar100   # cifar-100-python
    python -m tools.synthetic_cifar /tmp/raw --train-size 500 --test-size 100   # the same files, fewer images
    make repro PRESET=cifar10-resnet18                     # then time the stages (accuracies are meaningless)

Images are noise around a class-dependent colour and pattern, so a network can learn something; accuracies
on it say nothing about CIFAR.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np


def images(rng: np.random.Generator, labels: np.ndarray, classes: int) -> np.ndarray:
    n = len(labels)
    colour = (np.arange(classes)[:, None] * np.array([37, 71, 113]) % 256).astype(np.float32)  # [classes, 3]
    yy, xx = np.mgrid[0:32, 0:32]
    x = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for start in range(0, n, 5000):
        lab = labels[start:start + 5000]
        stripes = np.sin((xx[None] * (1 + lab[:, None, None] % 5) + yy[None] * (lab[:, None, None] // 5)) / 3.0)
        img = colour[lab][:, :, None, None] * 0.6 + 50 * stripes[:, None] + rng.normal(0, 40, (len(lab), 3, 32, 32))
        x[start:start + 5000] = np.clip(img + 40, 0, 255).astype(np.uint8)
    return x.reshape(n, 3072)


TRAIN_SIZE, TEST_SIZE = 50000, 10000  # the real datasets' sizes


def write(root: str | Path, cifar100: bool = False, train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE) -> Path:
    """Write the synthetic CIFAR-10 (or CIFAR-100) batches under ``root``; the folder written. ``train_size`` and
    ``test_size`` below the real 50,000 / 10,000 write the same files with fewer images (CIFAR-10's five train
    batches share them; the loader warns that the split is not the official size)."""
    if train_size < (1 if cifar100 else 5) or test_size < 1:
        raise ValueError(f"synthetic CIFAR: {train_size} train / {test_size} test images are too few "
                         f"(at least {1 if cifar100 else 5} / 1).")
    rng = np.random.default_rng(0)
    classes = 100 if cifar100 else 10
    key = b"fine_labels" if cifar100 else b"labels"
    folder = Path(root) / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = [train_size // 5 + (i < train_size % 5) for i in range(5)]
    files = [("train", train_size), ("test", test_size)] if cifar100 else \
        [(f"data_batch_{i + 1}", n) for i, n in enumerate(per_batch)] + [("test_batch", test_size)]
    for name, n in files:
        labels = rng.integers(0, classes, n)
        batch = {b"batch_label": b"synthetic", key: [int(v) for v in labels], b"data": images(rng, labels, classes)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    print(f"wrote {sum(n for _, n in files):,} synthetic images to {folder}")
    return folder


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--cifar100", action="store_true")
    ap.add_argument("--train-size", type=int, default=TRAIN_SIZE,
                    help=f"training images (default {TRAIN_SIZE:,}, the real size; fewer for a quick check)")
    ap.add_argument("--test-size", type=int, default=TEST_SIZE,
                    help=f"test images (default {TEST_SIZE:,}, the real size)")
    args = ap.parse_args(argv)
    write(args.root, args.cifar100, args.train_size, args.test_size)


if __name__ == "__main__":
    main()
