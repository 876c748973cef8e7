"""Stage `prepare`: write the dataset as a fixed, seeded train/val/test split into data/prepared/."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything
from pdiff.core.stage import run_stage, stage_paths
from pdiff.data.prepare import PREPARED_FILE, prepare


def main() -> None:
    p = load_params()
    paths = stage_paths("prepare", "out")
    gen = seed_everything(p.seed, "prepare")
    data = prepare(p.data, gen)
    save_torch(data, f"{paths.out}/{PREPARED_FILE}")
    print(f"{p.data.name}: {len(data['train_x'])} train / {len(data['val_x'])} val / {len(data['test_x'])} test, "
          f"{data['num_classes']} classes, images {tuple(data['train_x'].shape[1:])} {data['train_x'].dtype}, "
          f"augmentation {data['augment']}")


if __name__ == "__main__":
    run_stage("prepare", main)
