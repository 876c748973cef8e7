"""Put the repository root on sys.path so `python stages/<stage>.py` imports the local `pdiff` package
(also inside DVC's temporary experiment folders, where an installed copy would be the wrong one), and set the
CPU kernel pins of params.yaml's `kernels` before torch is imported (pdiff/core/kernels.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdiff.core import kernels  # noqa: E402  (after the repository root is on sys.path)

kernels.set_environment(kernels.from_params_file())
