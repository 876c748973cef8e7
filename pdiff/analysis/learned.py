"""What a generator learned: copies of its training snapshots, their mean, or something new.

`learned_summary` is the top-level ``learned`` entry of metrics/novelty.json. For the generated models against
the K training snapshots it gives

- ``nn_l2_mean`` / ``_median``: L2 distance to the nearest snapshot, beside ``snapshot_nn_l2_mean`` / ``_median``,
  the snapshots' own spacing (each snapshot to its nearest other one: leave-one-out);
- ``mean_l2_mean`` / ``_median``: L2 distance to the snapshots' mean vector, beside ``snapshot_mean_l2_mean`` /
  ``_median``, the snapshots' own distance to it;
- ``distinct_nearest``: how many different snapshots are the nearest one of some generated model;
- ``disagreement_generated``: the mean share of test inputs on which two generated models predict different
  classes (all pairs, or a seeded sample of `MAX_PAIRS` pairs when there are more), and
  ``disagreement_snapshots``: the same for pairs of snapshots;
- ``diverse`` and ``verdict``: see `is_diverse` and `verdict`;
- ``dim``, ``num_snapshots``, ``num_generated`` (the finite ones), ``pairs_generated``, ``pairs_snapshots``: D, K, M
  and the number of pairs each disagreement is the mean over.

Distances come from the Gram matrix of all K + M vectors centred on the snapshots' mean, accumulated in float64
over chunks of columns (`distances`): no [K, D] float64 copy is made, so the ResNet-18 block (D = 4.72 M) costs a
few chunked matrix products. Centring keeps the Gram route accurate: the vectors' lengths are then the spread of
the snapshots, not the size of the parameters.
"""
from __future__ import annotations

import torch

# `is_diverse`: generated models disagree with each other at least this share of the snapshots' disagreement
DIVERSE_RATIO = 0.5
# `verdict`: "mean" below this share of the snapshots' distance to their mean, "copies" below this share of their
# spacing (a model closer to a snapshot than halfway to that snapshot's nearest neighbour)
MEAN_RATIO = 0.5
COPY_RATIO = 0.5
MAX_PAIRS = 20_000        # pairs of models whose predictions are compared, at most (more: a seeded sample)
CHUNK_VALUES = 1 << 22    # float64 values of one column chunk of all vectors (32 MB)
VERDICTS = ("copies", "mean", "collapsed", "new", "undefined")


def distances(snapshots: torch.Tensor, generated: torch.Tensor, chunk_values: int = CHUNK_VALUES
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairwise L2 distances [K + M, K + M], L2 distance of each vector to the snapshots' mean [K + M]) of the
    rows of ``snapshots`` [K, D] followed by those of ``generated`` [M, D], in float64. Built from the Gram matrix
    of the vectors centred on the snapshots' mean, ``chunk_values // (K + M)`` columns at a time; the diagonal
    of the distances is exactly 0."""
    k, m = len(snapshots), len(generated)
    dim = snapshots.shape[1]
    step = max(1, chunk_values // max(k + m, 1))
    gram = torch.zeros(k + m, k + m, dtype=torch.float64)
    for a in range(0, dim, step):
        b = min(a + step, dim)
        snaps = snapshots[:, a:b].to(torch.float64)
        centre = snaps.mean(0)
        rows = torch.cat([snaps - centre, generated[:, a:b].to(torch.float64) - centre])
        gram += rows @ rows.T
    sq = gram.diagonal().clone()
    pair = (sq[:, None] + sq[None, :] - 2 * gram).clamp_min(0).fill_diagonal_(0).sqrt()
    return pair, sq.clamp_min(0).sqrt()


def disagreement(predictions: torch.Tensor, gen: torch.Generator, max_pairs: int = MAX_PAIRS
                 ) -> tuple[float | None, int]:
    """(mean share of inputs on which two models predict different classes, number of pairs compared) for the
    rows of ``predictions`` [M, n] (class indices): all M (M - 1) / 2 pairs, or ``max_pairs`` pairs of distinct
    rows drawn from ``gen`` when there are more. (None, 0) for fewer than two models."""
    m, n = predictions.shape
    if m < 2 or n == 0:
        return None, 0
    if m * (m - 1) // 2 <= max_pairs:
        i, j = torch.triu_indices(m, m, 1)
    else:
        i = torch.randint(m, (max_pairs,), generator=gen)
        j = torch.randint(m - 1, (max_pairs,), generator=gen)
        j = j + (j >= i).long()  # a distinct second row, uniform over the other m - 1
    differ, batch = 0, max(1, (1 << 24) // n)
    for a in range(0, len(i), batch):
        differ += int((predictions[i[a:a + batch]] != predictions[j[a:a + batch]]).sum())
    return differ / (len(i) * n), len(i)


def is_diverse(distinct_nearest: int, generated: float | None, snapshots: float | None) -> bool | None:
    """Diverse: more than one distinct nearest snapshot, and generated models disagree with each other on at least
    `DIVERSE_RATIO` times the share of test inputs snapshots disagree on. False with one distinct nearest snapshot
    (or fewer than two models); None where a disagreement is unknown."""
    if distinct_nearest <= 1:
        return False
    if generated is None or snapshots is None:
        return None
    return generated >= DIVERSE_RATIO * snapshots


def verdict(s: dict) -> str:
    """One word for what the generated models are, from the numbers of a ``learned`` entry ``s``, in this order:

    - ``undefined``: no generated model, or fewer than two snapshots (no spacing to compare with);
    - ``mean``: not diverse (`is_diverse` False) and on average closer to the snapshots' mean than `MEAN_RATIO`
      times the snapshots' own distance to it: the generator learned the centre of the snapshots;
    - ``copies``: mean distance to the nearest snapshot below `COPY_RATIO` times the snapshots' mean spacing:
      the generated models sit on the snapshots (or between two neighbouring ones);
    - ``collapsed``: not diverse, but neither at the mean nor on the snapshots: the models are alike, elsewhere;
    - ``new``: none of these: diverse models that are neither copies nor the mean. Whether they are any better
      than the no-learning baselines is the accuracy table's question, not this one's."""
    if not s.get("num_generated") or s.get("snapshot_nn_l2_mean") is None:
        return "undefined"
    if s["diverse"] is False and s["mean_l2_mean"] < MEAN_RATIO * s["snapshot_mean_l2_mean"]:
        return "mean"
    if s["nn_l2_mean"] < COPY_RATIO * s["snapshot_nn_l2_mean"]:
        return "copies"
    if s["diverse"] is False:
        return "collapsed"
    return "new"


def _stats(values: torch.Tensor) -> tuple[float | None, float | None]:
    if not values.numel():
        return None, None
    return round(float(values.mean()), 6), round(float(values.median()), 6)


def learned_summary(snapshots: torch.Tensor, generated: torch.Tensor, gen: torch.Generator,
                    snapshot_predictions: torch.Tensor | None = None,
                    generated_predictions: torch.Tensor | None = None,
                    chunk_values: int = CHUNK_VALUES) -> dict:
    """The ``learned`` entry (module docstring) of the finite ``generated`` vectors [M, D] against ``snapshots``
    [K, D]; ``*_predictions`` [K or M, n]: each model's predicted class on the test inputs (None: the
    disagreements are unknown). ``gen`` draws the pairs when there are more than `MAX_PAIRS`."""
    k, m = len(snapshots), len(generated)
    pair, to_mean = distances(snapshots, generated, chunk_values)
    out: dict = {"dim": int(snapshots.shape[1]), "num_snapshots": k, "num_generated": m}
    to_snaps = pair[k:, :k]
    nearest = to_snaps.min(dim=1) if k and m else None
    out["nn_l2_mean"], out["nn_l2_median"] = _stats(nearest.values if nearest is not None else torch.zeros(0))
    own = pair[:k, :k].clone().fill_diagonal_(float("inf")).min(dim=1).values if k > 1 else torch.zeros(0)
    out["snapshot_nn_l2_mean"], out["snapshot_nn_l2_median"] = _stats(own)
    out["mean_l2_mean"], out["mean_l2_median"] = _stats(to_mean[k:])
    out["snapshot_mean_l2_mean"], out["snapshot_mean_l2_median"] = _stats(to_mean[:k])
    out["distinct_nearest"] = int(nearest.indices.unique().numel()) if nearest is not None else 0
    g, g_pairs = (disagreement(generated_predictions, gen) if generated_predictions is not None else (None, 0))
    s, s_pairs = (disagreement(snapshot_predictions, gen) if snapshot_predictions is not None else (None, 0))
    out |= {"disagreement_generated": None if g is None else round(g, 6), "pairs_generated": g_pairs,
            "disagreement_snapshots": None if s is None else round(s, 6), "pairs_snapshots": s_pairs}
    out["diverse"] = is_diverse(out["distinct_nearest"], out["disagreement_generated"],
                                out["disagreement_snapshots"])
    out["verdict"] = verdict(out)
    return out
