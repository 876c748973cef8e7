"""`make bench`'s `scaling` entry: AE and LDM cost per step for growing D, sized as the paper-scale preset."""
from tools.bench import scaling


def test_scaling_times_each_dimension_and_skips_what_would_not_fit():
    res = scaling(dims=(256, 1024, 10 ** 9), batch_size=2, steps=1, memory_limit_gb=4.0)
    assert res["ae_channels"] == [64, 128, 256, 256, 32] and res["ldm_channel_mults"] == [1, 2, 4, 8]
    for dim in ("256", "1024"):
        row = res["dims"][dim]
        assert row["ae_s_per_step"] > 0 and row["ldm_s_per_step"] > 0 and row["peak_mb"] > 0
        assert row["latent_shape"] == [2, int(dim) // 32]  # 5 halvings, 2 latent channels
    assert res["dims"]["256"]["ae_params"] < res["dims"]["1024"]["ae_params"]  # position embeddings grow with D
    assert "skipped" in res["dims"][str(10 ** 9)] and "GB" in res["dims"][str(10 ** 9)]["skipped"]


def test_scaling_figure_draws_what_ran_and_marks_what_was_skipped(tmp_path):
    from tools.bench import scaling_figure

    res = scaling(dims=(256, 10 ** 9), batch_size=2, steps=1, memory_limit_gb=4.0)
    scaling_figure(res, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 1000
