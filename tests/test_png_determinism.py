"""PNG figures carry no machine- or version-dependent bytes, and the machine-dependent embedding figure stays
outside the `analyze` stage's hashed outputs."""
import yaml

from pdiff.analysis.report import EMBEDDING_FIGURE, FIGURES
from pdiff.core.plots import loss_curves


def test_png_bytes_depend_only_on_what_is_drawn(tmp_path):
    history = {"loss": [(1, 1.0), (2, 0.5), (3, 0.25)]}
    loss_curves(history, tmp_path / "a.png", "t")
    loss_curves(history, tmp_path / "b.png", "t")
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data and b"atplotlib" not in data  # no version tag in a tEXt chunk


def test_embedding_figure_is_no_dvc_output():
    stage = yaml.safe_load(open("dvc.yaml"))["stages"]["analyze"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert EMBEDDING_FIGURE[0] not in FIGURES
    assert not any(o.startswith("plots/embedding") for o in outs) and "plots/analyze" in outs
