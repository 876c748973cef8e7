"""Does the generator learn? The real stage scripts, prepare -> evaluate, on tiny settings: the generated
models must score (median test accuracy) within 1 point of the snapshots they were trained on, and the latent
diffusion loss must fall. A denoiser trained against the wrong target (another sample's noise) fails both:
see docs/testing.md for the numbers."""
import json
from pathlib import Path

import pytest

from pdiff.core.stage import stage_command
from tests.conftest import make_tiny_repo, run

STAGES = ["prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate"]
# digits (TINY's data sizes), width 8, 5 epochs; enough AE/LDM steps to learn the snapshot cluster, 100 DDPM steps.
QUALITY = {
    "model": {"width": 8},
    "train": {"epochs": 5},
    "collect": {"num_snapshots": 20, "batch_size": 32},
    "conv_ae": {"train_ae": {"channels": [8, 16], "steps": 300, "batch_size": 20},
                "train_ldm": {"channels": 16, "steps": 300, "timesteps": 100, "batch_size": 20},
                "generate": {"batch_size": 20}},
    "generate": {"num_models": 20},
}
WINDOW = 3  # loss log points (every 25 steps) averaged at each end of the LDM's loss curve


def ldm_losses(repo: Path) -> list[float]:
    rows = (repo / "metrics/train_ldm/plots/metrics/loss.tsv").read_text().split("\n")[1:]
    return [float(row.split("\t")[1]) for row in rows if row.strip()]


def quality(repo: Path) -> dict:
    """The numbers the test judges: median test accuracy of originals and generated models, and the mean LDM
    loss over the first and last WINDOW log points."""
    ev = json.loads((repo / "metrics/evaluate.json").read_text())
    losses = ldm_losses(repo)
    return {"original_median": ev["original"]["acc_median"], "generated_median": ev["generated"]["acc_median"],
            "generated_failed": ev["generated"]["failed"],
            "ldm_loss_first": sum(losses[:WINDOW]) / WINDOW, "ldm_loss_last": sum(losses[-WINDOW:]) / WINDOW}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_generated_models_match_the_originals_and_ldm_loss_falls(tmp_path, seed):
    repo = make_tiny_repo(tmp_path / "repo", QUALITY | {"seed": seed})
    for stage in STAGES:
        run(stage_command(stage, repo / "dvc.yaml"), repo)
    q = quality(repo)
    print(q)
    assert q["generated_failed"] == 0, q
    assert q["generated_median"] >= q["original_median"] - 1.0, f"generated models are worse than the originals: {q}"
    assert q["ldm_loss_last"] < 0.7 * q["ldm_loss_first"], f"the latent diffusion loss did not fall: {q}"
