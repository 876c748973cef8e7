"""Training-curve logging: DVCLive (curves under metrics/<stage>/, declared in dvc.yaml) plus an in-memory
history that the stages turn into PNG figures."""
from __future__ import annotations

import math

from pdiff import PdiffError


class Tracker:
    def __init__(self, directory: str | None):
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.live = None
        if directory is not None:
            from dvclive import Live

            self.live = Live(directory, dvcyaml=False, save_dvc_exp=False, report=None)

    def log(self, step: int, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append((step, float(v)))
        if self.live is not None:
            self.live.step = step
            for k, v in values.items():
                self.live.log_metric(k, float(v))
            self.live.next_step()

    def close(self) -> None:
        if self.live is not None:
            self.live.end()


def check_finite(loss: float, step: int, what: str) -> None:
    """Stop training at the first NaN/Inf loss, naming the step and the value."""
    if not math.isfinite(loss):
        raise PdiffError(f"{what}: the loss became {loss} at step {step}; training stopped. Lower the learning "
                         f"rate or check the input data.")
