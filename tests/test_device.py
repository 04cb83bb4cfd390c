"""Device and thread choice for quantizers running in Spark tasks (GPU index mapping, CPU fallback)."""

import pytest
import torch

from sidlib.device import cuda_index, pick_device, set_worker_threads, task_gpu_address


@pytest.mark.parametrize("address, visible, expected", [
    (None, None, 0),        # outside a GPU task: the current device
    ("3", None, 3),         # Spark's address is the physical id
    ("3", "2,3", 1),        # CUDA_VISIBLE_DEVICES renumbers the visible GPUs from 0
    ("3", "3", 0),          # the platform already narrowed the process to the task's GPU
    ("5", "0,1", 0),        # address not among the visible ones: the first visible GPU
])
def test_cuda_index_maps_spark_gpu_addresses_to_torch_indices(address, visible, expected) -> None:  # type: ignore[no-untyped-def]
    assert cuda_index(address, visible) == expected


def test_no_task_resources_outside_spark_tasks() -> None:
    assert task_gpu_address() is None


def test_auto_picks_cuda_only_when_a_gpu_is_visible() -> None:
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_without_a_gpu_auto_is_cpu_and_explicit_cuda_fails(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        pick_device("cuda")


def test_worker_threads_follow_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SIDLIB_TORCH_THREADS", "1")
        assert set_worker_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
