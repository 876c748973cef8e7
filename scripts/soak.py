"""`make soak ROUNDS=20`: kill `dvc repro` with SIGKILL at random moments in a temporary clone of the current
commit, rerun it to completion, and check metrics/ stay byte-identical to a clean run and `dvc status` clean.
Summary: reports/soak/soak.json (rewritten after every round). Logic in tools/soak.py; docs/testing.md."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.soak import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
