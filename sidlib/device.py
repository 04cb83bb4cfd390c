"""Pick the torch device and thread count for the current process or Spark task."""

from __future__ import annotations

import os

import torch


def pick_device(preference: str | None = "auto") -> torch.device:
    """``auto`` means CUDA when this process can see a GPU, CPU otherwise; inside a Spark task that was
    given GPUs (``spark.task.resource.gpu.amount``) it is the task's own GPU, so tasks sharing an
    executor do not all land on GPU 0. An explicit ``cuda`` with no GPU is an error, not a silent
    fallback, so a misconfigured GPU cluster is noticed."""
    pref = (preference or "auto").lower()
    if pref == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", cuda_index(task_gpu_address(), os.environ.get("CUDA_VISIBLE_DEVICES")))
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but no CUDA device is visible")
    return torch.device(pref)


def task_gpu_address() -> str | None:
    """The first GPU address Spark assigned to the running task (classic Spark and Databricks), or
    ``None`` outside a task, on engines without task resources (Sail), or when no GPU was requested."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return None
    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context is not None else None
    return gpus.addresses[0] if gpus is not None and gpus.addresses else None


def cuda_index(address: str | None, visible_devices: str | None) -> int:
    """The torch CUDA index of a Spark GPU address. Spark addresses are physical ids; when
    ``CUDA_VISIBLE_DEVICES`` narrows what this process sees, torch numbers the visible ones from 0,
    so the address is looked up in that list (a platform that already narrowed it to the task's
    GPU leaves index 0)."""
    if address is None:
        return 0
    if visible_devices:
        visible = [v.strip() for v in visible_devices.split(",")]
        return visible.index(address) if address in visible else 0
    return int(address)


def set_worker_threads(n: int | None = None) -> int:
    """Limit torch intra-op threads to the cores this worker owns (default: ``SIDLIB_TORCH_THREADS``
    or the CPU count), so several Spark tasks on one host do not oversubscribe the cores."""
    if n is None:
        n = int(os.environ.get("SIDLIB_TORCH_THREADS", "0")) or (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
