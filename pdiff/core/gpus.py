"""One GPU per running experiment: every stage process of a `dvc queue start -j N` worker takes a free GPU
from a shared pool through a lock file and sees only that GPU.

All workers of one `dvc queue start` inherit the same environment, so the pool is given once:

    PDIFF_GPUS=0,1,2,3 dvc queue start -j 4

Each stage, before CUDA starts, takes an exclusive ``flock`` on ``$PDIFF_GPU_LOCK_DIR/gpu<id>.lock``
(default dir: /tmp/pdiff-gpu-locks) for the first free id and sets ``CUDA_VISIBLE_DEVICES`` to it. The lock
lives as long as the process; the kernel drops it when the process exits, also when it crashes or is
killed, so there is nothing stale to clean up. With N workers and N GPUs, no two stages share a GPU. When
every GPU is taken the stage waits. Nothing happens without ``PDIFF_GPUS``, when the user already set
``CUDA_VISIBLE_DEVICES``, or under torchrun (DDP takes one GPU per local rank itself).
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pdiff import PdiffError

_held: list = []  # open lock files of this process (closing them would release the GPU)


def parse_pool(text: str) -> list[str]:
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids or not all(t.isdigit() for t in ids):
        raise PdiffError(f"PDIFF_GPUS={text!r} must be a comma-separated list of GPU ids, e.g. 0,1,2,3.")
    return ids


def try_lock(pool: list[str], lock_dir: str | Path) -> str | None:
    """Take the first free GPU id of ``pool`` (keeping its lock open); None when all are taken."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for gpu in pool:
        f = open(lock_dir / f"gpu{gpu}.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _held.append(f)
        return gpu
    return None


def release_all() -> None:
    while _held:
        _held.pop().close()


def pin_from_env(env=os.environ, poll: float = 2.0, timeout: float = 24 * 3600) -> str | None:
    """Pin this process to one free GPU of ``$PDIFF_GPUS`` (see the module doc); returns the id or None."""
    if "PDIFF_GPUS" not in env or "CUDA_VISIBLE_DEVICES" in env or int(env.get("WORLD_SIZE", "1")) > 1:
        return None
    pool = parse_pool(env["PDIFF_GPUS"])
    lock_dir = env.get("PDIFF_GPU_LOCK_DIR", "/tmp/pdiff-gpu-locks")
    start = time.time()
    while (gpu := try_lock(pool, lock_dir)) is None:
        if time.time() - start > timeout:
            raise PdiffError(f"no free GPU among PDIFF_GPUS={env['PDIFF_GPUS']} after {timeout:.0f} s.")
        time.sleep(poll)
    env["CUDA_VISIBLE_DEVICES"] = gpu
    print(f"pinned to GPU {gpu} (lock {lock_dir}/gpu{gpu}.lock)")
    return gpu
