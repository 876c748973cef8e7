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


def lines_of(fig) -> list[dict[str, list]]:
    """Per axes of ``fig``: {line label: [(x, y) points]}; unlabeled lines under "_"."""
    out = []
    for ax in fig.axes:
        lines = {}
        for line in ax.get_lines():
            label = line.get_label() if not line.get_label().startswith("_") else "_"
            lines.setdefault(label, []).extend(zip(line.get_xdata(), line.get_ydata(), strict=True))
        out.append(lines)
    return out


def test_scaling_figure_draws_what_ran_and_marks_what_was_skipped(tmp_path, monkeypatch):
    import pdiff.core.plots as plots
    from tests.conftest import png_size
    from tools.bench import scaling_figure

    row = lambda ae, ldm, ae_mb, mb: {"ae_s_per_step": ae, "ldm_s_per_step": ldm, "ae_peak_mb": ae_mb,  # noqa: E731
                                      "peak_mb": mb}
    res = {"preset": "p", "batch_size": 2, "memory_limit_gb": 4.0,
           "dims": {"256": row(0.01, 0.02, 512.0, 1024.0), "1024": row(0.04, 0.03, 1024.0, 2048.0),
                    str(2 ** 30): {"skipped": "estimated 99 GB"}}}
    drawn = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(lines_of(fig)) or real(fig, path))
    scaling_figure(res, tmp_path / "scaling.png")
    (left, right), = drawn
    assert left["AE"] == [(256, 0.01), (1024, 0.04)] and left["LDM"] == [(256, 0.02), (1024, 0.03)]
    assert right["after AE steps"] == [(256, 0.5), (1024, 1.0)]  # GB
    assert right["after LDM steps"] == [(256, 1.0), (1024, 2.0)]
    assert {y for _, y in right["limit"]} == {4.0}  # the memory limit as a horizontal line
    for panel in (left, right):  # the skipped D as a vertical line in both panels
        assert {x for x, _ in panel["skipped: would not fit"]} == {2 ** 30}
    width, height = png_size(tmp_path / "scaling.png")
    assert 900 <= width <= 1400 and 2 * height < width  # two panels side by side at 120 dpi (10 x 3.6 inches)


def test_bench_tokens_eval_only_runs_on_resnet18_and_keeps_the_other_entries(tmp_path):
    """`python -m tools.bench_tokens --eval-only` at tiny size, as a command: ResNet-18's whole layer4.1 and the
    whole network evaluated naively and with prefix caching, into the given JSON file beside what it held."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"scaling": {"kept": 1}}))
    res = subprocess.run([sys.executable, "-m", "tools.bench_tokens", "--eval-only", "--eval-vectors", "1",
                          "--eval-inputs", "2", "--threads", "2", "--out", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["scaling"] == {"kept": 1}
    ev = result["eval_large"]
    assert (ev["num_vectors"], ev["num_inputs"]) == (1, 2)
    assert ev["layer4.1"]["dim"] == 4_720_640 and ev["layer4.1"]["prefix_cached"]
    assert ev["whole"]["dim"] == 11_172_810 and not ev["whole"]["prefix_cached"]  # every parameter: nothing to cache
    assert ev["layer4.1"]["identical_predictions"] and ev["whole"]["identical_predictions"]


def test_bench_tokens_whole_resnet18_shapes_are_every_parameter():
    """The D that `make bench`'s largest tokens row and `make gpu-check`'s tokens timing use (`--dims resnet18`):
    all 62 parameter tensors of ResNet-18 on 1-channel 28x28 input, 11,172,810 values."""
    import math

    from tools.bench_tokens import WHOLE, shapes_for

    shapes = shapes_for(WHOLE)
    assert len(shapes) == 62 and sum(math.prod(s) for s in shapes) == 11_172_810
    assert shapes[0] == [64, 1, 3, 3] and shapes[-1] == [10]  # CIFAR stem on one channel; the 10-class head's bias
