"""Put the repository root on sys.path so `python stages/<stage>.py` imports the local `pdiff` package
(also inside DVC's temporary experiment folders, where an installed copy would be the wrong one)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
