"""Save a base model's weights as a state dict for `train.init` (safetensors: read without unpickling):

    python -m tools.export_weights models/base.pt weights/my_model.safetensors

The input is a `train` checkpoint (models/base.pt) or any weights-only torch file holding a state dict.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pdiff.core.artifacts import write_atomic
from pdiff.core.stage import run_script
from pdiff.nets.weights import read_state_dict


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="a .safetensors file (e.g. under weights/)")
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in read_state_dict(args.checkpoint).items()}
    write_atomic(args.out, lambda tmp: save_file(state, str(tmp)))
    print(f"{len(state)} tensors, {sum(v.numel() for v in state.values()):,} values -> {args.out}")


if __name__ == "__main__":
    run_script(main)
