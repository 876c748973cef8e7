"""`make bench`: measure fast vs naive evaluation, DDIM vs DDPM sampling and the pipeline's cost on the
default pipeline -> metrics/bench.json. Options: `python benchmarks/bench.py --help`; the code is tools/bench.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
