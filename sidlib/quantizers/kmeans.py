"""Plain k-means: one code position of cardinality ``k``.

The baseline every Semantic ID scheme is compared with, and the source of the SIDE paper's top-k
cluster-id feature (:meth:`KMeans.topk`). It is a one-level residual EM quantizer
(:class:`~sidlib.quantizers.residual_em.ResidualEMQuantizer`: init, layout, decoding) whose E- and
M-steps are the :mod:`~sidlib.quantizers.kmeans_ops` ones residual k-means uses too, so the two fit
a level identically.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.kmeans_ops import (
    MIN_CLUSTER_SHARE, assignment_statistics, beam_assign, beam_search, cluster_sums, lloyd_update, nearest,
)
from sidlib.quantizers.residual_em import ResidualEMQuantizer
from sidlib.validation import as_float_matrix, as_tensor

#: Largest bit budget turned into ``k = 2 ** bits`` automatically; beyond it k-means++ and the
#: ``[n, k]`` assignment get too expensive to be a sensible default, so ``k`` must be explicit.
MAX_DEFAULT_BITS = 16


class KMeans(ResidualEMQuantizer):
    """k-means with ``k`` clusters (``k`` defaults to ``2 ** bits`` for ``bits <= 16``).

    Args:
        dim: embedding dimension.
        bits: code budget, used only when ``k`` is not given.
        k: number of clusters.
        max_iter, tol, seed, device, encode_batch_size: as for
            :class:`~sidlib.quantizers.rq_kmeans.RQKMeans` (and its default ``min_cluster_share``).
    """

    name = "kmeans"

    def __init__(self, dim: int, bits: float = 24, k: int | None = None, max_iter: int = 25, tol: float = 1e-4,
                 seed: int = 0, device: str | None = "auto", encode_batch_size: int = 65536):
        if k is None:
            if not 0 < bits <= MAX_DEFAULT_BITS:
                raise InvalidInputError(
                    f"kmeans with bits={bits} would need k=2**{bits} clusters; pass k explicitly "
                    f"(k defaults to 2**bits only for 0 < bits <= {MAX_DEFAULT_BITS})"
                )
            k = int(round(2 ** bits))
        super().__init__(dim, bits=bits, levels=1, codebook_size=k, max_iter=max_iter, tol=tol,
                         seed=seed, device=device, encode_batch_size=encode_batch_size)

    @property
    def k(self) -> int:
        return self.codebook_size

    def _encode_levels(self, x: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        return beam_search(x, self.codebooks[:n_levels])

    def _chunk_statistics(self, level: int, x: torch.Tensor) -> dict[str, np.ndarray]:
        """Nearest centre of each row (:func:`kmeans_ops.beam_assign` on the one codebook) and the
        per-cluster sums of the rows."""
        _, dist, ids = beam_assign(x, self.codebooks)
        counts, sums = cluster_sums(ids, x, self.codebook_size)
        return assignment_statistics(counts, sums, dist, ids, self.codebook_size)

    @torch.no_grad()
    def apply_statistics(self, level: int, stats: Mapping[str, np.ndarray]) -> float:
        """Lloyd M-step (:func:`kmeans_ops.lloyd_update`)."""
        self._start_m_step(level)
        reseeded = lloyd_update(self.codebooks[level], stats, self._sample, MIN_CLUSTER_SHARE)
        return self._objective_change(float(stats["sse"]), reseeded)

    def topk(self, X: Any, k: int) -> np.ndarray:
        """Ids int64 ``[n, k]`` of the ``k`` nearest clusters of each row, nearest first (column 0 is
        :meth:`encode`'s code). The SIDE paper's top-k cluster-id baseline feature."""
        self._require_fitted()
        if int(k) != k or not 1 <= k <= self.codebook_size:
            raise InvalidInputError(f"k must be an integer in [1, {self.codebook_size}], got {k}")
        arr = as_float_matrix(X, self.dim)
        out = np.empty((arr.shape[0], int(k)), dtype=np.int64)
        with torch.no_grad():
            for start in range(0, arr.shape[0], self.encode_batch_size):
                chunk = as_tensor(arr[start:start + self.encode_batch_size]).to(self.torch_device)
                out[start:start + chunk.shape[0]] = nearest(chunk, self.codebooks[0], int(k))[1].cpu().numpy()
        return out
