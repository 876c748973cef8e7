import math
import re

import numpy as np
import pytest
import torch

from pdiff import PdiffError
from pdiff.analysis.decoded import (
    DecoderReference,
    decoded_noise,
    latent_gaussian,
    reconstructions,
)
from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, predict_vectors, summarize
from pdiff.analysis.learned import disagreement, distances, learned_summary, verdict
from pdiff.analysis.novelty import (
    embed_2d,
    error_iou,
    max_similarity,
    nearest_l2,
    run_analysis,
    summary_table,
)
from pdiff.analysis.report import findings, learned_line, method_csv, report_markdown
from pdiff.analysis.sets import NAMES, SetInputs, make_sets, of_kind
from pdiff.core.config import BaselinesConfig
from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import flatten, select, shapes_of

DECODER_SETS = [s.name for s in of_kind("decoder")]
SMALL = BaselinesConfig(noise_sigma=0.05, average_k=3)  # the baselines of the small analyses below
EVAL25 = EvalOptions(batch_size=25)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _masks(rows, n=10):
    m = torch.zeros(len(rows), n, dtype=torch.bool)
    for i, idx in enumerate(rows):
        m[i, list(idx)] = True
    return m


# ------------------------------------------------------------------------------------------- measures
def test_identical_models_have_iou_one_and_l2_zero():
    errors = _masks([{0, 3, 5}, {1, 2}, {7}])
    assert torch.equal(error_iou(errors, errors).diagonal(), torch.ones(3, dtype=torch.float64))
    vecs = torch.randn(4, 7)
    assert torch.equal(nearest_l2(vecs, vecs), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(max_similarity(errors, errors), torch.ones(3, dtype=torch.float64))


def test_disjoint_error_sets_have_iou_zero_and_partial_overlap_is_exact():
    a, b = _masks([{0, 1}]), _masks([{2, 3, 4}, {1, 2}, set()])
    iou = error_iou(a, b)
    assert iou[0, 0] == 0.0
    assert iou[0, 1] == pytest.approx(1 / 3)  # {1} / {0, 1, 2}
    assert iou[0, 2] == 0.0  # an empty set shares nothing with a non-empty one
    assert error_iou(_masks([set()]), _masks([set()]))[0, 0] == 1.0  # two perfect models: same (empty) set


def test_iou_matrix_matches_a_set_by_set_loop():
    rng = np.random.default_rng(0)
    a, b = torch.as_tensor(rng.random((6, 40)) < 0.3), torch.as_tensor(rng.random((5, 40)) < 0.3)
    iou = error_iou(a, b)
    for i in range(6):
        for j in range(5):
            sa, sb = set(np.flatnonzero(a[i].numpy())), set(np.flatnonzero(b[j].numpy()))
            assert iou[i, j] == pytest.approx(len(sa & sb) / len(sa | sb) if sa | sb else 1.0)


def test_error_masks_from_different_splits_are_refused():
    with pytest.raises(PdiffError, match="same test split"):
        error_iou(torch.zeros(2, 5, dtype=torch.bool), torch.zeros(2, 6, dtype=torch.bool))


def test_leave_one_out_skips_only_the_model_itself():
    errors = _masks([{0, 1}, {0, 1}, {5, 6, 7, 8}])  # snapshots 0 and 1 identical, 2 alone
    assert max_similarity(errors, errors).tolist() == [1.0, 1.0, 1.0]
    loo = max_similarity(errors, errors, leave_one_out=True)
    assert loo[:2].tolist() == [1.0, 1.0] and loo[2] == 0.0
    points = torch.tensor([[0.0], [1.0], [3.0]])
    assert nearest_l2(points, points).tolist() == [0.0, 0.0, 0.0]
    assert nearest_l2(points, points, leave_one_out=True).tolist() == [1.0, 1.0, 2.0]
    one = points[:1]
    assert math.isnan(nearest_l2(one, one, leave_one_out=True)[0])
    assert math.isnan(max_similarity(errors[:1], errors[:1], leave_one_out=True)[0])


# ------------------------------------------------------------------------------------------- analysis
def _tiny_setup(k=6, n=4, scale=0.05):
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 4).eval()
    names = select(model, "auto")
    base = flatten(model, names)
    shapes = shapes_of(model, names)
    snaps = base + scale * torch.randn(k, base.numel())
    generated = base + scale * torch.randn(n, base.numel())
    generated[0, 0] = float("nan")  # counted as failed, not run, as in `evaluate`
    x, y = torch.randn(60, 1, 8, 8), torch.randint(10, (60,))
    return (model, {"params": snaps, "names": names, "shapes": shapes},
            {"params": generated, "names": names, "shapes": shapes}, x, y)


def test_run_analysis_uses_the_evaluate_code_path_and_reports_every_method():
    model, snaps, generated, x, y = _tiny_setup()
    analysis = run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25)
    summary = summary_table(analysis)
    assert list(summary) == [m for m in NAMES if m not in DECODER_SETS]  # no decoder given: no decoder sets
    for method in (s.name for s in of_kind("baseline")):
        assert summary[method]["count"] == 4 and summary[method]["applicable"]
    assert summary["generated"]["count"] == 3 and summary["generated"]["failed"] == 1
    for method, obj in (("original", snaps), ("generated", generated)):
        ok = torch.isfinite(obj["params"]).all(1)
        acc = 100.0 * evaluate_vectors(model, obj["names"], obj["params"][ok], x, y).float().mean(1)
        expected = summarize(acc, failed=int((~ok).sum()))
        assert {k: summary[method][k] for k in expected} == expected
    for s in summary.values():
        assert 0.0 <= s["max_similarity_mean"] <= 1.0 and s["nn_l2_mean"] >= 0.0
    orig = analysis.methods["original"]
    assert torch.equal(orig.nn_l2, nearest_l2(snaps["params"], snaps["params"], leave_one_out=True))
    assert (orig.nn_l2 > 0).all()  # leave-one-out: never the zero distance to itself
    emb = embed_2d(analysis, seed=0)
    for key in ("pca", "tsne"):
        assert {m: v.shape for m, v in emb[key].items()} == {
            m: (len(analysis.methods[m].vectors), 2) for m in summary}
    csv = method_csv(analysis, "generated").splitlines()
    assert csv[0] == "quantile,accuracy,max_similarity,nn_l2" and len(csv) == 4
    report = re.sub(r" +", " ", report_markdown(analysis, summary))
    for s in of_kind("baseline"):  # a row and the registry's description of every baseline
        assert f"| {s.name} |" in report and f"`{s.name}` ({s.describe(analysis.settings)})" in report, s.name
    assert "| generated |" in report and "interpolation` (a uniformly random point on the segment" in report


def test_single_snapshot_marks_gaussian_and_leave_one_out_as_undefined():
    model, snaps, generated, x, y = _tiny_setup(k=1, n=3)
    baselines = BaselinesConfig(noise_sigma=0.01, average_k=16)
    summary = summary_table(run_analysis(model, snaps, generated, (x, y), baselines, _gen(),
                                         opts=EvalOptions(batch_size=60)))
    for method in ("gaussian", "interpolation"):  # no spread to draw from, no second snapshot to move towards
        assert summary[method]["count"] == 0 and not summary[method]["applicable"], method
        assert "K >= 2" in summary[method]["note"], method
    assert summary["original"]["nn_l2_mean"] is None and summary["original"]["max_similarity_mean"] is None
    assert summary["generated"]["nn_l2_mean"] > 0
    assert "cannot be compared" in findings(summary, 60)[0]


def test_findings_follow_the_numbers():
    row = lambda acc, sim, l2: {"acc_mean": acc, "max_similarity_mean": sim, "nn_l2_mean": l2}  # noqa: E731
    summary = {"original": row(90.0, 0.95, 0.5), "generated": row(90.2, 0.97, 0.1), "noise": row(91.0, 0.9, 1.0),
               "average": row(90.5, 0.96, 0.3), "gaussian": {"acc_mean": None}}
    first, second = findings(summary, 1000)
    assert "closer to" in first and "overlap more" in first
    assert "`noise` (91.00%), beats" in second and "+0.80 points" in second
    summary["generated"] = row(91.05, 0.9, 0.9)
    first, second = findings(summary, 1000)
    assert "farther from" in first and "overlap less" in first and "within one test sample" in second


def test_results_passed_in_are_used_instead_of_evaluating_again():
    model, snaps, generated, x, y = _tiny_setup()
    fresh = summary_table(run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25))
    known = {m: evaluate_vectors(model, obj["names"], obj["params"][torch.isfinite(obj["params"]).all(1)], x, y)
             for m, obj in (("original", snaps), ("generated", generated))}
    reused = summary_table(run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25,
                                        evaluated=known))
    assert reused == fresh
    # the given results really are what is reported: every original now gets every sample right
    known["original"] = torch.ones_like(known["original"])
    forced = summary_table(run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25, evaluated=known))
    assert forced["original"]["acc_min"] == 100.0 and forced["noise"]["acc_mean"] == fresh["noise"]["acc_mean"]
    with pytest.raises(PdiffError, match="shape"):
        run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25,
                     evaluated={"generated": known["original"]})


# ------------------------------------------------------------------------------------------- what was learned
def test_a_generator_that_outputs_the_mean_learned_the_mean():
    model, snaps, _, x, y = _tiny_setup(scale=1.0)  # snapshots far enough apart to predict differently
    mean = {**snaps, "params": snaps["params"].mean(0, keepdim=True).repeat(5, 1)}
    analysis = run_analysis(model, snaps, mean, (x, y), SMALL, _gen(), opts=EVAL25)
    learned = analysis.learned
    assert learned["distinct_nearest"] == 1 and learned["disagreement_generated"] == 0.0
    assert learned["disagreement_snapshots"] > 0.1
    assert (learned["pairs_snapshots"], learned["pairs_generated"]) == (15, 10)  # all pairs of 6 and of 5
    assert learned["diverse"] is False and learned["verdict"] == "mean"
    assert learned["mean_l2_mean"] < 1e-6 < learned["snapshot_mean_l2_mean"]
    assert "What was learned: mean** (not diverse" in report_markdown(analysis, summary_table(analysis))


def test_copies_of_snapshots_are_copies_and_the_distances_are_the_novelty_rows():
    model, snaps, _, x, y = _tiny_setup()
    copies = {**snaps, "params": snaps["params"][[0, 2, 4, 4]]}
    analysis = run_analysis(model, snaps, copies, (x, y), SMALL, _gen(), opts=EVAL25)
    learned, summary = analysis.learned, summary_table(analysis)
    assert learned["nn_l2_mean"] == 0.0 and learned["nn_l2_median"] == 0.0 and learned["distinct_nearest"] == 3
    assert learned["verdict"] == "copies"
    assert learned["snapshot_nn_l2_mean"] == pytest.approx(summary["original"]["nn_l2_mean"], abs=2e-6)
    other = run_analysis(model, snaps, _tiny_setup()[2], (x, y), SMALL, _gen(), opts=EVAL25)
    assert other.learned["nn_l2_mean"] == pytest.approx(summary_table(other)["generated"]["nn_l2_mean"], abs=2e-6)
    assert other.learned["num_generated"] == 3  # the non-finite vector is left out, as everywhere


def test_disagreement_of_identical_and_of_opposite_predictors():
    same = torch.randint(10, (1, 50), generator=_gen()).repeat(4, 1)
    assert disagreement(same, _gen()) == (0.0, 6)
    opposite = torch.stack([same[0], (same[0] + 1) % 10])
    assert disagreement(opposite, _gen()) == (1.0, 1)
    assert disagreement(same[:1], _gen()) == (None, 0)  # one model: no pair
    # more pairs than allowed: a seeded sample of distinct pairs, here all alike (every row differs everywhere)
    rows = torch.arange(30)[:, None].repeat(1, 7)
    assert disagreement(rows, _gen(), max_pairs=50) == (1.0, 50)
    assert disagreement(rows.clone().fill_(3), _gen(), max_pairs=50) == (0.0, 50)


def test_distances_in_column_chunks_are_the_exact_pairwise_ones():
    snaps, gen = 3 + torch.randn(7, 40, generator=_gen()), 3 + torch.randn(4, 40, generator=_gen(1))
    pair, to_mean = distances(snaps, gen, chunk_values=11 * 3)  # 3 columns at a time
    everything = torch.cat([snaps, gen]).double()
    assert torch.allclose(pair, torch.cdist(everything, everything), atol=1e-12)
    assert torch.allclose(to_mean, (everything - snaps.double().mean(0)).norm(dim=1), atol=1e-12)
    assert (pair.diagonal() == 0).all()
    wide = learned_summary(snaps, gen, _gen(), chunk_values=11)
    assert wide == learned_summary(snaps, gen, _gen()) and wide["disagreement_generated"] is None
    assert wide["diverse"] is None and wide["verdict"] == "new"  # far from the snapshots, diversity unknown


def test_verdict_rule():
    base = {"num_generated": 10, "snapshot_nn_l2_mean": 1.0, "snapshot_mean_l2_mean": 4.0, "nn_l2_mean": 2.0,
            "mean_l2_mean": 3.0, "diverse": True}
    assert verdict(base) == "new"
    assert verdict(base | {"diverse": False}) == "collapsed"
    assert verdict(base | {"diverse": False, "mean_l2_mean": 1.9}) == "mean"
    assert verdict(base | {"mean_l2_mean": 1.9}) == "new"  # near the mean but diverse: not the mean
    assert verdict(base | {"nn_l2_mean": 0.4}) == "copies"
    assert verdict(base | {"snapshot_nn_l2_mean": None}) == verdict(base | {"num_generated": 0}) == "undefined"
    assert learned_line({}) == ""


def test_predictions_given_are_used_for_the_disagreements():
    model, snaps, generated, x, y = _tiny_setup()
    ok = torch.isfinite(generated["params"]).all(1)
    predicted = {m: predict_vectors(model, obj["names"], obj["params"][torch.isfinite(obj["params"]).all(1)], x)
                 for m, obj in (("original", snaps), ("generated", generated))}
    evaluated = {m: p == y for m, p in predicted.items()}
    fresh = run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25).learned
    given = run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25, evaluated=evaluated,
                         predicted=predicted).learned
    assert given == fresh and int(ok.sum()) == given["num_generated"]
    blind = run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25, evaluated=evaluated).learned
    assert blind["disagreement_snapshots"] is None and blind["nn_l2_mean"] == fresh["nn_l2_mean"]


# ------------------------------------------------------------------------------------------- decoder sets
def _tiny_decoder(base: torch.Tensor, latent_shape=(2, 3), scale=0.05):
    """A decoder whose every output lies within ``scale`` of ``base`` (tanh), unlike the snapshots' noise."""
    weight = torch.randn(base.numel(), math.prod(latent_shape), generator=_gen(7))
    return lambda z: base + scale * torch.tanh(z.flatten(1).float() @ weight.T)


def test_decoder_sets_come_from_the_decoder_are_counted_and_leave_the_other_baselines_alone():
    model, snaps, generated, x, y = _tiny_setup(k=6, n=4)
    base = flatten(model, snaps["names"])
    decode = _tiny_decoder(base)
    latents = torch.randn(6, 2, 3, generator=_gen(3))
    without = summary_table(run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25))
    analysis = run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25,
                            decoder=DecoderReference(decode, latents, num=5, form="per_position"))
    summary = summary_table(analysis)
    assert list(summary) == list(NAMES) and DECODER_SETS == ["decoded_noise", "reconstruction"]
    assert {m: summary[m] for m in without} == without  # drawn after the other baselines, from the same gen
    assert summary["decoded_noise"]["count"] == 5 and summary["reconstruction"]["count"] == 6
    decoded, recon = analysis.methods["decoded_noise"].vectors, analysis.methods["reconstruction"].vectors
    assert torch.equal(recon, decode(latents))  # the decoding of the snapshots' own latents
    for vecs in (decoded, recon):  # in the decoder's output range, which the snapshots leave
        assert ((vecs - base).abs() < 0.05).all()
    assert not ((snaps["params"] - base).abs() < 0.05).all()
    assert torch.cdist(decoded.double(), recon.double()).min() > 0  # noise, not a copy of a reconstruction
    for method in DECODER_SETS:  # evaluated on the same code path as the other methods
        acc = 100.0 * evaluate_vectors(model, snaps["names"], analysis.methods[method].vectors, x, y).float().mean(1)
        assert summary[method]["acc_mean"] == summarize(acc)["acc_mean"]
        assert 0.0 <= summary[method]["max_similarity_mean"] <= 1.0 and summary[method]["nn_l2_mean"] > 0
    report = re.sub(r" +", " ", report_markdown(analysis, summary))
    assert "| decoded_noise |" in report and "| reconstruction |" in report
    assert f"(`decoded_noise`, {summary['decoded_noise']['acc_mean']:.2f}%)" in report
    assert f"{summary['reconstruction']['acc_mean']:.2f}%" in report
    assert analysis.settings["decoded_form"] == "per_position" and analysis.settings["latent_shape"] == [2, 3]
    assert method_csv(analysis, "decoded_noise").count("\n") == 1 + 5


def test_decoding_in_batches_fills_one_result_and_equals_one_batch():
    from pdiff.analysis.decoded import decode_in_batches

    decode = lambda z: torch.cat([z.flatten(1), -z.flatten(1)], 1)[:, :7].double()  # noqa: E731  (exact per row)
    latents = torch.randn(5, 2, 3, generator=_gen(2))
    whole = decode_in_batches(decode, latents)
    assert whole.shape == (5, 7) and whole.dtype == torch.float32
    assert torch.equal(decode_in_batches(decode, latents, batch_size=2), whole)  # batches of 2, 2 and 1
    with pytest.raises(PdiffError, match="nothing to decode"):
        decode_in_batches(decode, latents[:0])


def test_latent_gaussian_forms_and_bad_input():
    latents = torch.randn(50, 2, 4, generator=_gen(1)) * torch.arange(1.0, 9.0).view(2, 4) + 3.0
    mean, std = latent_gaussian(latents, "per_position")
    assert mean.shape == std.shape == (2, 4)
    assert torch.allclose(std, latents.double().std(0)) and torch.allclose(mean, latents.double().mean(0))
    g_mean, g_std = latent_gaussian(latents, "global")
    assert g_mean.shape == () and g_std == pytest.approx(float(latents.double().std()))
    decode = lambda z: z.flatten(1)  # noqa: E731  (identity decoder: the drawn latents themselves)
    drawn = decoded_noise(decode, latents, 4000, "per_position", _gen(2)).view(4000, 2, 4).double()
    assert torch.allclose(drawn.std(0), std, rtol=0.1) and torch.allclose(drawn.mean(0), mean, atol=0.3)
    with pytest.raises(PdiffError, match="decoded_form"):
        latent_gaussian(latents, "per_value")
    with pytest.raises(PdiffError, match="K >= 2"):
        latent_gaussian(latents[:1], "per_position")
    with pytest.raises(PdiffError, match="decoded_num"):
        decoded_noise(decode, latents, 0, "global", _gen())


def test_ae_decoder_wraps_the_trained_autoencoder_without_noise():
    from pdiff.generative.autoencoder import Normalizer, ParamAE
    from pdiff.generative.builtins import AEDecoder

    x = torch.randn(6, 20, generator=_gen(4)) * 3 + 1
    normalizer = Normalizer(20).fit(x, "per_param", [20])
    ae = ParamAE(20, channels=[4, 8], latent_channels=2)
    decoder = AEDecoder(ae, normalizer)
    decode, z = decoder.decode, decoder.encode(x)
    assert z.shape == (6, *ae.latent_shape)
    with torch.no_grad():
        expected = normalizer.inverse(ae(normalizer(x)))
    assert torch.equal(reconstructions(decode, z), expected)
    sets = make_sets(SetInputs(x, [[20]], 2, SMALL, DecoderReference(decode, z, 3, "global")), _gen())
    assert sets["decoded_noise"].shape == (3, 20) and torch.equal(sets["reconstruction"], expected)


def test_embedding_from_the_gram_matrix_matches_the_direct_route():
    """Past EMBED_DIRECT_MAX values the embedding is computed from the n x n Gram matrix (a whole ResNet-18 block
    would need tens of GB directly): the Gram matrix, built in column chunks, is that of the z-scored points, and
    its PCA equals sklearn's up to each axis' sign. t-SNE itself is chaotic (a start that differs in the fourth
    digit moves points far), so its output is checked for shape and finiteness only."""
    import numpy as np

    from pdiff.analysis.novelty import _gram

    model, snaps, generated, x, y = _tiny_setup(k=12, n=6)
    analysis = run_analysis(model, snaps, generated, (x, y), BaselinesConfig(noise_sigma=0.01, average_k=4), _gen(),
                            opts=EvalOptions(batch_size=60))
    names = [m for m, r in analysis.methods.items() if len(r.vectors)]
    s = analysis.methods["original"].vectors.double()
    mean, std = s.mean(0), s.std(0, unbiased=False)
    z = torch.cat([(analysis.methods[m].vectors.double() - mean) / std for m in names])
    torch.testing.assert_close(_gram(analysis, names, mean, std, chunk=7), z @ z.T)
    direct = embed_2d(analysis, seed=0)
    gram = embed_2d(analysis, seed=0, direct_max=0)
    assert direct["pca"].keys() == gram["pca"].keys() == gram["tsne"].keys() and "original" in gram["pca"]
    for m in direct["pca"]:
        a, b = direct["pca"][m], gram["pca"][m]
        signs = np.sign((a * b).sum(0) if len(a) > 1 else a[0] * b[0])
        np.testing.assert_allclose(a, b * signs, rtol=1e-6, atol=1e-8)
        assert gram["tsne"][m].shape == (len(a), 2) and np.isfinite(gram["tsne"][m]).all()


def test_nearest_l2_in_column_chunks_equals_the_whole_computation():
    """Beyond chunk_values the squared distances are summed over column chunks (bounded memory at any D): the
    same nearest distances as one cdist over all columns, to float64 rounding."""
    g = torch.Generator().manual_seed(0)
    snaps, vecs = torch.randn(6, 1000, generator=g), torch.randn(4, 1000, generator=g)
    for loo, a in ((False, vecs), (True, snaps)):
        whole = nearest_l2(a, snaps, leave_one_out=loo)
        chunked = nearest_l2(a, snaps, leave_one_out=loo, chunk_values=10 * 37)  # 37 columns at a time
        torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_large_sets_are_predicted_one_by_one_without_a_stacked_copy(monkeypatch):
    """predict_sets stacks sets (the prefix runs once) up to STACK_VALUES values, and past that runs them one by
    one: the same predictions either way; rows_where returns the vectors themselves when all rows are kept."""
    from pdiff.analysis import evaluation
    from pdiff.analysis.evaluation import predict_sets, rows_where

    model, names, x = SmallCNN(width=4).eval(), ["bn4.weight", "bn4.bias"], torch.randn(12, 1, 28, 28)
    sets = {"a": torch.randn(3, 32), "b": torch.randn(2, 32)}
    stacked = predict_sets(model, names, sets, x)
    monkeypatch.setattr(evaluation, "STACK_VALUES", 10)
    one_by_one = predict_sets(model, names, sets, x)
    assert all(torch.equal(stacked[k], one_by_one[k]) for k in sets)
    v = sets["a"]
    assert rows_where(v, torch.ones(3, dtype=torch.bool)) is v
    assert torch.equal(rows_where(v, torch.tensor([True, False, True])), v[[0, 2]])


def test_past_spill_set_values_each_made_set_leaves_memory_for_a_file_with_the_same_numbers(monkeypatch):
    """A whole network's baselines and decoder sets do not fit in memory together: past SPILL_SET_VALUES per set,
    run_analysis makes, evaluates and measures one set at a time and keeps its vectors in a SetFile. Every number,
    the predictions, the learned entry and the embedding (from the Gram matrix, read back in column chunks) are
    those of the in-memory path, bit for bit, and the files go with the analysis."""
    import os

    from pdiff.analysis import novelty

    model, snaps, generated, x, y = _tiny_setup(k=6, n=4)
    decoder = DecoderReference(_tiny_decoder(flatten(model, snaps["names"])), torch.randn(6, 2, 3, generator=_gen(3)),
                               num=5, form="per_position")
    run = lambda: run_analysis(model, snaps, generated, (x, y), SMALL, _gen(), opts=EVAL25, decoder=decoder)  # noqa: E731
    in_memory = run()
    monkeypatch.setattr(novelty, "SPILL_SET_VALUES", 0)
    spilled = run()
    assert summary_table(spilled) == summary_table(in_memory) and spilled.learned == in_memory.learned
    made = [m for m in NAMES if m not in ("original", "generated")]
    for m in NAMES:
        a, b = in_memory.methods[m], spilled.methods[m]
        assert isinstance(b.vectors, novelty.SetFile) == (m in made and b.applicable)
        for key in ("accuracy", "max_similarity", "nn_l2"):
            assert torch.equal(getattr(a, key), getattr(b, key)), (m, key)
        if isinstance(b.vectors, novelty.SetFile):
            assert torch.equal(b.vectors.columns(0, a.vectors.shape[1]), a.vectors)
            assert torch.equal(b.vectors.columns(3, 11), a.vectors[:, 3:11]) and len(b.vectors) == len(a.vectors)
    for route in ({}, {"direct_max": 0}):  # the direct route reads the files whole, the Gram route in chunks
        e_mem, e_spill = embed_2d(in_memory, seed=0, **route), embed_2d(spilled, seed=0, **route)
        for kind in ("pca", "tsne"):
            assert e_mem[kind].keys() == e_spill[kind].keys()
            assert all(np.array_equal(e_mem[kind][m], e_spill[kind][m]) for m in e_mem[kind]), (route, kind)
    path = spilled.methods["decoded_noise"].vectors.path
    assert os.path.exists(path)
    del spilled, b
    assert not os.path.exists(path)
