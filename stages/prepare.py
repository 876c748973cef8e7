"""Stage `prepare`: write the dataset as a fixed, seeded train/val/test split into data/prepared/."""
import _bootstrap  # noqa: F401  (repo root on sys.path)
from pdiff.artifacts import save_torch
from pdiff.cli import run_stage
from pdiff.config import load_params
from pdiff.data import PREPARED_FILE, load_raw, split
from pdiff.utils import seed_everything


def main() -> None:
    p = load_params()
    gen = seed_everything(p.seed, "prepare")
    x, y = load_raw(p.data.name, p.data.root)
    data = split(x, y, p.data.val_size, p.data.test_size, gen)
    save_torch(data | {"name": p.data.name}, f"data/prepared/{PREPARED_FILE}")
    print(f"{p.data.name}: {len(data['train_x'])} train / {len(data['val_x'])} val / {len(data['test_x'])} test, "
          f"{data['num_classes']} classes, images {tuple(data['train_x'].shape[1:])}")


if __name__ == "__main__":
    run_stage("prepare", main)
