"""What every stage script shares: params loading and turning user errors into one clear paragraph."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from pdiff import PdiffError


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run ``main``; a PdiffError (bad params, missing or corrupt file, NaN loss) exits 1 with its
    message and no traceback."""
    start = time.perf_counter()
    try:
        main()
    except PdiffError as exc:
        print(f"error in stage `{name}`: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"stage `{name}` interrupted; no partial output was written.", file=sys.stderr)
        sys.exit(130)
    print(f"stage `{name}` done in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def run_script(main: Callable[[], None]) -> None:
    """Like `run_stage`, for the helper scripts in scripts/: a PdiffError exits 1 with its message only."""
    try:
        main()
    except PdiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
