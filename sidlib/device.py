"""Pick the torch device and thread count for the current process or Spark task."""

from __future__ import annotations

import os

import torch


def pick_device(preference: str | None = "auto") -> torch.device:
    """``auto`` means CUDA when this process can see a GPU (Spark sets ``CUDA_VISIBLE_DEVICES`` from
    the task's resources), CPU otherwise. An explicit ``cuda`` with no GPU is an error, not a silent
    fallback, so a misconfigured GPU cluster is noticed."""
    pref = (preference or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but no CUDA device is visible")
    return torch.device(pref)


def set_worker_threads(n: int | None = None) -> int:
    """Limit torch intra-op threads to the cores this worker owns (default: ``SIDLIB_TORCH_THREADS``
    or the CPU count), so several Spark tasks on one host do not oversubscribe the cores."""
    if n is None:
        n = int(os.environ.get("SIDLIB_TORCH_THREADS", "0")) or (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
