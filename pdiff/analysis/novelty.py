"""Are generated parameters new? Memorization measures (after Zeng et al., 2025) of every evaluated set.

The sets (the snapshots, the generated models, the baselines of `pdiff.analysis.baselines` and, with a trained
decoder, the decoder sets of `pdiff.analysis.decoded`) are the registry `pdiff.analysis.sets.SETS`; `run_analysis`
makes the ones it lists a function for and measures them all.

Measures, for every model of every set, against the training snapshots:

- accuracy on the test split, through `pdiff.analysis.evaluation.evaluate_vectors`, the code path of `evaluate`
  (the `analyze` stage passes the originals' and generated models' per-sample results that `evaluate` stored,
  so only the sets made here are evaluated here);
- ``max_similarity``: the largest IoU between the model's set of misclassified test samples and a
  snapshot's, computed for all pairs at once as a product of boolean error matrices;
- ``nn_l2``: L2 distance in parameter space to the nearest snapshot.

For the original snapshots themselves both are leave-one-out (the snapshot is not compared with itself).

Beside the per-set rows, `run_analysis` measures what the generator learned, copies, the mean or something new
(`pdiff.analysis.learned`): the top-level ``learned`` entry of metrics/novelty.json.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch
from torch import nn

from pdiff import PdiffError
from pdiff.analysis.baselines import own_stream
from pdiff.analysis.decoded import DecoderReference
from pdiff.analysis.evaluation import EvalOptions, finite_rows, predict_sets, rows_where, summarize
from pdiff.analysis.learned import learned_summary
from pdiff.analysis.sets import BY_NAME, NAMES, SetInputs, iter_sets
from pdiff.core.artifacts import rerun_hint
from pdiff.nets.selection import check_compatible


# --------------------------------------------------------------------------------------------------- measures
def error_iou(errors_a: torch.Tensor, errors_b: torch.Tensor) -> torch.Tensor:
    """[A, B] IoU of the error sets of every row of ``errors_a`` [A, n] with every row of ``errors_b`` [B, n]
    (boolean masks, True = misclassified). Two empty error sets are identical: IoU 1."""
    if errors_a.shape[1] != errors_b.shape[1]:
        raise PdiffError(f"error masks over {errors_a.shape[1]} and {errors_b.shape[1]} test samples cannot be "
                         "compared; both must come from the same test split.")
    a, b = errors_a.to(torch.float64), errors_b.to(torch.float64)
    inter = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def _leave_one_out(matrix: torch.Tensor, fill: float) -> torch.Tensor:
    """Copy of a square [K, K] matrix with its diagonal set to ``fill`` (a row is not compared with itself)."""
    if matrix.shape[0] != matrix.shape[1]:
        raise PdiffError(f"leave-one-out needs a square matrix, got {tuple(matrix.shape)}.")
    out = matrix.clone()
    out.fill_diagonal_(fill)
    return out


def max_similarity(errors: torch.Tensor, train_errors: torch.Tensor, leave_one_out: bool = False) -> torch.Tensor:
    """[M] largest error-set IoU of each model with any training snapshot. With ``leave_one_out``, ``errors``
    are the snapshots' own (row i = snapshot i) and the self-pair is skipped; NaN where nothing is left."""
    sim = error_iou(errors, train_errors)
    if leave_one_out:
        sim = _leave_one_out(sim, float("-inf"))
    if sim.shape[1] == 0 or (leave_one_out and sim.shape[1] == 1):
        return torch.full((sim.shape[0],), float("nan"), dtype=torch.float64)
    return sim.max(dim=1).values


CHUNK_VALUES = 1 << 25  # float64 values of one column chunk of vectors and snapshots together (256 MB)


def nearest_l2(vectors: torch.Tensor, snapshots: torch.Tensor, leave_one_out: bool = False,
               chunk_values: int = CHUNK_VALUES) -> torch.Tensor:
    """[M] L2 distance of each vector to its nearest snapshot (exact pairwise distances in float64).
    With ``leave_one_out``, ``vectors`` are the snapshots themselves; NaN where nothing is left. Where the float64
    copies of both would exceed ``chunk_values`` values, the squared distances are summed over column chunks, so
    memory stays bounded at any D (a whole network's vectors are not copied whole)."""
    if len(snapshots) == 0 or (leave_one_out and len(snapshots) == 1):
        return torch.full((len(vectors),), float("nan"), dtype=torch.float64)
    step = max(1, chunk_values // max(len(vectors) + len(snapshots), 1))
    if vectors.shape[1] <= step:
        dist = torch.cdist(vectors.to(torch.float64), snapshots.to(torch.float64),
                           compute_mode="donot_use_mm_for_euclid_dist")
    else:
        sq = torch.zeros(len(vectors), len(snapshots), dtype=torch.float64)
        for a in range(0, vectors.shape[1], step):
            part = torch.cdist(vectors[:, a:a + step].to(torch.float64), snapshots[:, a:a + step].to(torch.float64),
                               compute_mode="donot_use_mm_for_euclid_dist")
            sq += part * part
        dist = sq.sqrt()
    if leave_one_out:
        dist = _leave_one_out(dist, float("inf"))
    return dist.min(dim=1).values


# --------------------------------------------------------------------------------------------------- analysis
# Past this many values in one set of generated models (n x D: a whole block or network), `run_analysis` makes,
# evaluates and measures one set at a time and keeps each set's vectors in a `SetFile`, not in memory.
SPILL_SET_VALUES = 1 << 26


class SetFile:
    """A set's vectors [M, D] written to a file in ``folder`` (a temporary directory that lives as long as any of
    its files): only column ranges are read back (`columns`), with plain reads, so the rows never sit in the
    process's memory all at once. The embedding's Gram matrix reads them this way (`_columns`)."""

    def __init__(self, vectors: torch.Tensor, folder: tempfile.TemporaryDirectory):
        self._folder = folder
        self.shape = tuple(vectors.shape)
        with tempfile.NamedTemporaryFile(dir=folder.name, suffix=".f32", delete=False) as f:
            self.path = f.name
            for row in vectors:
                f.write(row.float().contiguous().numpy())

    def __len__(self) -> int:
        return self.shape[0]

    def columns(self, a: int, b: int) -> torch.Tensor:
        """Columns a..b-1 of every row: [M, b - a] float32."""
        m, d = self.shape
        b = min(b, d)
        out = np.empty((m, max(b - a, 0)), dtype=np.float32)
        with open(self.path, "rb") as f:
            for r in range(m):
                f.seek((r * d + a) * 4)
                out[r] = np.fromfile(f, dtype=np.float32, count=out.shape[1])
        return torch.from_numpy(out)


def _columns(vectors: torch.Tensor | SetFile, a: int, b: int) -> torch.Tensor:
    return vectors.columns(a, b) if isinstance(vectors, SetFile) else vectors[:, a:b]


def _timed(items: Iterator, timings: dict, key: str) -> Iterator:
    """``items`` as they come, the seconds spent making each added to ``timings[key]``."""
    while True:
        start = time.perf_counter()
        item = next(items, None)
        timings[key] += time.perf_counter() - start
        if item is None:
            return
        yield item


@dataclass
class MethodResult:
    """Per-model numbers of one method; ``vectors`` are the finite vectors that were evaluated (in a `SetFile`
    for a made set past `SPILL_SET_VALUES`)."""
    vectors: torch.Tensor | SetFile
    accuracy: torch.Tensor        # [M] percent
    max_similarity: torch.Tensor  # [M]
    nn_l2: torch.Tensor           # [M]
    failed: int = 0               # non-finite vectors, not evaluated (as in `evaluate`)
    applicable: bool = True
    note: str = ""


@dataclass
class Analysis:
    methods: dict[str, MethodResult]
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    learned: dict = field(default_factory=dict)  # `pdiff.analysis.learned.learned_summary` of the generated set


def _mean(t: torch.Tensor) -> float | None:
    t = t[torch.isfinite(t)]
    return round(float(t.mean()), 6) if t.numel() else None


def summarize_method(r: MethodResult) -> dict:
    """The metrics of one method: `summarize`'s accuracy statistics (as in metrics/evaluate.json) plus
    max_similarity_mean / _median and nn_l2_mean / _median (None where not defined)."""
    stats = summarize(r.accuracy, failed=r.failed)
    sims, dists = r.max_similarity[torch.isfinite(r.max_similarity)], r.nn_l2[torch.isfinite(r.nn_l2)]
    stats |= {
        "max_similarity_mean": _mean(r.max_similarity),
        "max_similarity_median": round(float(sims.median()), 6) if sims.numel() else None,
        "nn_l2_mean": _mean(r.nn_l2),
        "nn_l2_median": round(float(dists.median()), 6) if dists.numel() else None,
        "applicable": r.applicable,
    }
    if r.note:
        stats["note"] = r.note
    return stats


def summary_table(analysis: Analysis) -> dict:
    """{set: summarize_method(...)} in the registry's order (`pdiff.analysis.sets.SETS`): the content of
    metrics/novelty.json."""
    return {m: summarize_method(analysis.methods[m]) for m in NAMES if m in analysis.methods}


def _measure_group(group: dict[str, torch.Tensor | None], model: nn.Module, names: list[str],
                   test: tuple[torch.Tensor, torch.Tensor], opts: EvalOptions, evaluated: dict, predicted: dict,
                   timings: dict, *, snaps: torch.Tensor, train_errors: torch.Tensor | None,
                   folder: tempfile.TemporaryDirectory | None) -> tuple[dict[str, MethodResult], torch.Tensor]:
    """Evaluate the sets of ``group`` (those not in ``evaluated``; their predictions are added to ``predicted``)
    and measure them against ``snaps``: ({name: MethodResult}, the snapshots' error masks). ``train_errors`` are
    those masks (None: ``group`` holds "original"); with a ``folder``, each set's vectors are kept in a `SetFile`
    there."""
    x, y = test
    start = time.perf_counter()
    finite = {m: finite_rows(v) for m, v in group.items() if v is not None}
    kept = {m: rows_where(group[m], ok) for m, ok in finite.items()}  # no copy when every row is finite
    todo = {m: kept[m] for m in finite if m not in evaluated}
    fresh = predict_sets(model, names, todo, x, dataclasses.replace(opts, desc="+".join(todo)))
    predicted |= fresh
    correct = {m: (kept[m], int((~ok).sum()), evaluated[m] if m in evaluated else fresh[m] == y.cpu())
               for m, ok in finite.items()}
    for m, (vecs, _, corr) in correct.items():
        if tuple(corr.shape) != (len(vecs), len(y)):
            raise PdiffError(f"the given results for `{m}` have shape {tuple(corr.shape)}, not {len(vecs)} "
                             f"finite vectors by {len(y)} test examples.")
    timings["evaluate_s"] += time.perf_counter() - start

    start = time.perf_counter()
    if train_errors is None:
        train_errors = ~correct["original"][2]
    results = {}
    for method in group:
        if method not in correct:  # its make function returned None: the set does not apply here
            empty = torch.zeros(0, dtype=torch.float64)
            results[method] = MethodResult(snaps.new_zeros(0, snaps.shape[1]), empty, empty, empty,
                                           applicable=False, note=BY_NAME[method].not_applicable)
            continue
        vecs, failed, corr = correct[method]
        loo = method == "original"
        results[method] = MethodResult(
            vectors=vecs if folder is None else SetFile(vecs, folder), accuracy=100.0 * corr.float().mean(1),
            failed=failed, max_similarity=max_similarity(~corr, train_errors, leave_one_out=loo),
            nn_l2=nearest_l2(vecs, snaps, leave_one_out=loo))
    timings["measures_s"] += time.perf_counter() - start
    return results, train_errors


def run_analysis(model: nn.Module, snapshots: dict, generated: dict, test: tuple[torch.Tensor, torch.Tensor],
                 baselines, gen: torch.Generator, *, opts: EvalOptions | None = None,
                 evaluated: dict[str, torch.Tensor] | None = None,
                 predicted: dict[str, torch.Tensor] | None = None,
                 decoder: DecoderReference | None = None,
                 sources: tuple[str, str] = ("the snapshots", "the generated vectors")) -> Analysis:
    """Make every set of the registry (`pdiff.analysis.sets.iter_sets`: the baselines, as many models each as
    there are generated vectors, and, with ``decoder`` (the trained decoder and the snapshots' latents), the
    decoder sets), evaluate every set on ``test`` = (x, y) with `evaluate_vectors` (``opts``: device and batch
    size), and measure max_similarity and nn_l2 against the snapshots. Up to `SPILL_SET_VALUES` values per set the
    sets are made and evaluated together; past it, one at a time, each kept in a `SetFile` once measured, so memory
    holds one made set at a time (the same numbers either way: tested). ``baselines`` has the `baselines` params
    (``noise_sigma``, ``average_k``, ...); ``gen`` is the shared random stream (see `pdiff.analysis.sets`).

    ``evaluated`` maps a method ("original", "generated") to its per-sample correctness [M_finite, n] on
    (x, y) when it is already known (from `evaluate`, see `load_correctness`); those methods are not
    evaluated again; ``predicted`` maps such a method to its predicted classes [M_finite, n] (`load_evaluation`),
    which the ``learned`` entry's disagreements need (a set evaluated here has them from its evaluation; without
    them the disagreements are None). ``sources`` name the snapshots' and the generated vectors' files in error
    messages."""
    evaluated, predicted = evaluated or {}, dict(predicted or {})
    x, y = test
    opts = opts or EvalOptions()
    for name, obj in zip(sources, (snapshots, generated), strict=True):
        check_compatible(model, obj["names"], obj["shapes"], f"{name} vectors")
    if list(snapshots["names"]) != list(generated["names"]):
        raise PdiffError(f"{sources[1]} holds {generated['names']} but {sources[0]} holds {snapshots['names']}. "
                         + rerun_hint(what="so that both come from the same selection"))
    names, shapes = list(snapshots["names"]), [list(s) for s in snapshots["shapes"]]
    snaps = snapshots["params"].float()
    if not finite_rows(snaps).all():
        raise PdiffError(f"{sources[0]} holds non-finite values. {rerun_hint('collect')}")
    n = len(generated["params"])
    timings = dict.fromkeys(("make_sets_s", "evaluate_s", "measures_s"), 0.0)
    made = _timed(iter_sets(SetInputs(snaps, shapes, n, baselines, decoder), gen), timings, "make_sets_s")
    reference = {"original": snaps, "generated": generated["params"].float()}
    # One set at a time past SPILL_SET_VALUES (each set leaves memory for a file once measured); else all together,
    # so the model's prefix runs once for every set (`predict_sets`).
    folder = tempfile.TemporaryDirectory(prefix="pdiff-sets-") if n * snaps.shape[1] > SPILL_SET_VALUES else None
    groups = (chain([reference], ({name: v} for name, v in made)) if folder is not None
              else [reference | dict(made)])
    results, train_errors = {}, None
    for group in groups:
        measured, train_errors = _measure_group(group, model, names, (x, y), opts, evaluated, predicted, timings,
                                                snaps=snaps, train_errors=train_errors,
                                                folder=None if group is reference else folder)
        results |= measured
        group.clear()  # a spilled set's tensor is gone before the next set is made
    results = {m: results[m] for m in NAMES if m in results}
    start = time.perf_counter()
    learned = learned_summary(results["original"].vectors, results["generated"].vectors, own_stream(gen, "learned"),
                              predicted.get("original"), predicted.get("generated"))
    timings["measures_s"] += time.perf_counter() - start
    settings = {"num_snapshots": len(snaps), "num_models": n, "num_values": snaps.shape[1],
                "test_size": len(y), "noise_sigma": baselines.noise_sigma,
                "average_k": min(int(baselines.average_k), len(snaps))}
    if decoder is not None:
        settings |= {"decoded_num": decoder.num, "decoded_form": decoder.form,
                     "latent_shape": list(decoder.latents.shape[1:])}
    return Analysis(results, settings, timings, learned)


# --------------------------------------------------------------------------------------------------- embedding
# Above this many values (points x D) the embedding is computed from the points' Gram matrix (exact, memory n^2).
EMBED_DIRECT_MAX = 1 << 27
MOMENT_CHUNK_VALUES = 1 << 24  # snapshot values per column chunk of their mean and std (128 MB as float64)


def embed_2d(analysis: Analysis, seed: int, direct_max: int = EMBED_DIRECT_MAX) -> dict[str, dict[str, np.ndarray]]:
    """2-D PCA and t-SNE coordinates of every method's vectors: {"pca"|"tsne": {method: [M, 2]}}.

    Values are z-scored with the snapshots' per-parameter mean and std first (so every parameter counts
    alike, as in the AE's per_param normalization). PCA axes are fitted on the snapshots (on all points
    when K < 3); t-SNE (perplexity min(30, (n - 1) / 3)) embeds all points together and is left out
    when there are fewer than 5 points. Past ``direct_max`` values (a whole block of ResNet-18: n x D in the
    billions, tens of GB as float64) both come from the n x n Gram matrix of the z-scored points, built in
    column chunks: PCA by the kernel trick, t-SNE on the distances (sklearn's euclidean route gives the same) with
    the same kind of PCA start. The two routes agree up to the sign of each PCA axis (tested)."""
    snaps = analysis.methods["original"].vectors
    mean, std = _column_moments(snaps, max(1, MOMENT_CHUNK_VALUES // max(len(snaps), 1)))
    std = torch.where(std > 0, std, torch.ones_like(std))
    names = [m for m, r in analysis.methods.items() if len(r.vectors)]
    sizes = [len(analysis.methods[m].vectors) for m in names]
    bounds = np.cumsum([0] + sizes)
    n, dim = sum(sizes), snaps.shape[1]
    first = names.index("original") if "original" in names else None
    fit_rows = (slice(int(bounds[first]), int(bounds[first + 1])) if first is not None and sizes[first] >= 3
                else slice(0, n))
    if n * dim <= direct_max:
        everything = torch.cat([(_columns(analysis.methods[m].vectors, 0, dim).double() - mean) / std
                                for m in names]).numpy()
        pca, tsne = _embed_direct(everything, fit_rows, seed)
    else:
        pca, tsne = _embed_gram(_gram(analysis, names, mean, std), fit_rows, seed)
    split = lambda coords: {m: coords[a:b] for m, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)}  # noqa: E731
    return {"pca": split(pca) if pca is not None else {}, "tsne": split(tsne) if tsne is not None else {}}


def _tsne(points_or_dist: np.ndarray, seed: int, init, precomputed: bool) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = min(30.0, (len(points_or_dist) - 1) / 3)
    # One OpenMP thread: sklearn's Barnes-Hut gradient spin-waits across threads, which on a busy 2-core
    # machine made it ~10x slower (24 s vs 1.8 s wall for the default's 600 points), same result.
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init=init, learning_rate="auto", random_state=seed,
                    metric="precomputed" if precomputed else "euclidean").fit_transform(points_or_dist)


def _embed_direct(everything: np.ndarray, fit_rows: slice, seed: int):
    from sklearn.decomposition import PCA

    pca = tsne = None
    if len(everything) >= 2 and everything.shape[1] >= 2:
        pca = PCA(n_components=2, random_state=seed).fit(everything[fit_rows]).transform(everything)
    if len(everything) >= 5:
        tsne = _tsne(everything, seed, "pca", precomputed=False)
    return pca, tsne


def _column_moments(x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and population std [D] (float64) of ``x`` [K, D], ``chunk`` columns at a time, so no
    float64 copy of the whole [K, D] is made (each column's numbers are the same as in one pass)."""
    if len(x) <= 1:
        mean = x.double().mean(0) if len(x) else torch.zeros(x.shape[1], dtype=torch.float64)
        return mean, torch.zeros_like(mean)
    mean = torch.empty(x.shape[1], dtype=torch.float64)
    std = torch.empty_like(mean)
    for a in range(0, x.shape[1], chunk):
        cols = x[:, a:a + chunk].double()
        mean[a:a + chunk], std[a:a + chunk] = cols.mean(0), cols.std(0, unbiased=False)
    return mean, std


def _gram(analysis: Analysis, names: list[str], mean: torch.Tensor, std: torch.Tensor,
          chunk: int = 1 << 16) -> torch.Tensor:
    """G = X X^T (float64) of the z-scored points X, all methods' vectors in order, ``chunk`` columns at a time."""
    vectors = [analysis.methods[m].vectors for m in names]
    n = sum(len(v) for v in vectors)
    gram = torch.zeros(n, n, dtype=torch.float64)
    for a in range(0, mean.numel(), chunk):
        b = min(a + chunk, mean.numel())
        cols = torch.cat([_columns(v, a, b).double() for v in vectors])
        cols = (cols - mean[a:b]) / std[a:b]
        gram += cols @ cols.T
    return gram


def _embed_gram(gram: torch.Tensor, fit_rows: slice, seed: int):
    """PCA (fitted on ``fit_rows``) and t-SNE from the Gram matrix alone."""
    n = len(gram)
    pca = tsne = None
    if n >= 2:
        pca = _kernel_pca(gram, fit_rows)
    if n >= 5:
        diag = gram.diagonal()
        dist = (diag[:, None] + diag[None, :] - 2 * gram).clamp_min(0).fill_diagonal_(0).sqrt()
        # sklearn's "pca" start: all points' first two principal components, scaled to std 1e-4 on the first axis
        init = _kernel_pca(gram, slice(0, n))
        init = init / np.std(init[:, 0]) * 1e-4
        tsne = _tsne(dist.numpy(), seed, init.astype(np.float32), precomputed=True)
    return pca, tsne


def _kernel_pca(gram: torch.Tensor, fit_rows: slice) -> np.ndarray:
    """Every point's coordinates on the first two principal axes of the points in ``fit_rows``, from G = X X^T:
    with F the fitted rows centred (mean m), the axes are F^T u_k / sqrt(l_k) for the top eigenpairs of F F^T,
    and a point x projects to (x - m) F^T u_k / sqrt(l_k)."""
    n = len(gram)
    idx = torch.arange(n)[fit_rows]
    k = len(idx)
    g_ff = gram[idx][:, idx]
    c = torch.eye(k, dtype=gram.dtype) - 1.0 / k            # centring over the fitted rows
    cross = gram[:, idx]                                     # x . f_j
    # (x - m) . (f_j - m) = x.f_j - x.m - m.f_j + m.m, every term a mean of Gram entries
    w = cross - cross.mean(1, keepdim=True) - g_ff.mean(0)[None, :] + g_ff.mean()
    vals, vecs = torch.linalg.eigh(c @ g_ff @ c)
    order = torch.argsort(vals, descending=True)[:2]
    vals, vecs = vals[order].clamp_min(1e-300), vecs[:, order]
    coords = (w @ vecs) / vals.sqrt()
    if coords.shape[1] < 2:
        coords = torch.cat([coords, torch.zeros(n, 2 - coords.shape[1], dtype=coords.dtype)], 1)
    return coords.numpy()
