"""Data-driven starting points for neural codebooks: a few Lloyd k-means steps (on the shared
:mod:`.kmeans_ops` blocks), principal axes, and the step of a uniform scalar quantizer fitted to a
projection.

Gradient training from random codebooks wastes most of its epochs (and leaves dead codes); starting
from a greedy residual PCA / k-means solution makes a short fit good and the init alone usable.
"""

from __future__ import annotations

import numpy as np
import torch

from sidlib.quantizers.kmeans_ops import cluster_sums, kmeans_plus_plus, nearest
from sidlib.quantizers.scalar import half_width, nearest_level


def lloyd(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` centers (k-means++ seeding drawn from ``generator``, then ``iters`` Lloyd steps; an
    empty cluster keeps its center) and the final assignment of each row."""
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    centers = kmeans_plus_plus(x, k, rng)
    for _ in range(iters):
        counts, sums = cluster_sums(nearest(x, centers)[1][:, 0], x, k)
        filled = counts > 0
        centers[torch.from_numpy(filled).to(x.device)] = torch.from_numpy(sums[filled] / counts[filled, None]).to(centers)
    return centers, nearest(x, centers)[1][:, 0]


def principal_axes(x: torch.Tensor, k: int) -> torch.Tensor:
    """The top ``min(k, dim)`` principal directions of ``x`` as unit rows (eigenvectors of the
    covariance, largest variance first)."""
    centred = x - x.mean(0)
    _, vectors = torch.linalg.eigh(centred.T @ centred)
    return vectors.flip(1)[:, :k].T.contiguous()


def uniform_step(p: torch.Tensor, levels: int, iters: int = 10) -> torch.Tensor:
    """Step of the ``levels``-level centred uniform quantizer that best fits the 1-D values ``p``:
    start with the levels spanning +-2 std, then alternate nearest-level assignment and the
    least-squares step ``sum(p s) / sum(s^2)`` (a 1-D Lloyd on the scale alone)."""
    step = (2 * p.std(unbiased=False) / half_width(levels)).clamp_min(1e-6)
    for _ in range(iters):
        s = nearest_level(p / step, levels)
        norm = s.pow(2).sum()
        if norm == 0:
            break
        step = ((p * s).sum() / norm).clamp_min(1e-6)
    return step
