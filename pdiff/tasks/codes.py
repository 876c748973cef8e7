"""Tasks as class codes. A task over C classes is a C-bit code: the classes marked 1 are positive, the rest
negative. The all-0 and all-1 codes are trivial, so there are 2^C - 2 tasks (1,022 for C = 10).

The split is one seeded permutation of the task space: its first ``num_unseen`` codes are the unseen (test)
tasks, the next ``num_val`` the validation tasks (for choices such as the guidance scale), the next
``num_seen`` the seen tasks the generator is fitted on. With one seed the unseen and validation codes stay the
same whatever ``num_seen`` is, so runs with different numbers of seen tasks are compared on the same tasks."""
from __future__ import annotations

import torch

from pdiff import PdiffError


def all_codes(bits: int) -> torch.Tensor:
    """Every non-trivial code over ``bits`` classes, [2^bits - 2, bits] (0/1 float), in binary order; bit i is
    class i."""
    if not 2 <= bits <= 16:
        raise PdiffError(f"tasks: codes need between 2 and 16 classes, the dataset has {bits}.")
    ints = torch.arange(1, 2 ** bits - 1)
    return ((ints[:, None] >> torch.arange(bits)[None]) & 1).float()


def split_codes(bits: int, num_seen: int, num_val: int, num_unseen: int, gen: torch.Generator) -> dict:
    """{"unseen", "val", "seen"}: disjoint code sets [n, bits] drawn by one seeded permutation."""
    codes = all_codes(bits)
    need = num_seen + num_val + num_unseen
    if need > len(codes):
        raise PdiffError(f"params: `tasks.num_seen` + `tasks.num_val` + `tasks.num_unseen` = {need} is more than "
                         f"the {len(codes)} non-trivial tasks over {bits} classes; lower `tasks.num_seen` to at "
                         f"most {len(codes) - num_val - num_unseen}.")
    perm = torch.randperm(len(codes), generator=gen)
    unseen, val = perm[:num_unseen], perm[num_unseen:num_unseen + num_val]
    seen = perm[num_unseen + num_val:need]
    return {"unseen": codes[unseen], "val": codes[val], "seen": codes[seen]}


def binary_labels(y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """[T, N] 0/1 labels of N examples with class labels ``y`` under each of the T codes."""
    return codes[:, y]


def code_str(code: torch.Tensor) -> str:
    """'0110000001': character i is class i's bit."""
    return "".join(str(int(b)) for b in code.tolist())


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[A, B] Hamming distances between two sets of codes."""
    return (a[:, None, :] != b[None, :, :]).sum(-1)
