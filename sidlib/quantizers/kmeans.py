"""Plain k-means: one code position of cardinality ``k``.

The baseline every Semantic ID scheme is compared with, and the source of the SIDE paper's top-k
cluster-id feature (:meth:`KMeans.topk`). It is exactly a one-level residual k-means, so it reuses
:class:`~sidlib.quantizers.rq_kmeans.RQKMeans` (same EM statistics, init and empty-cluster remedy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.kmeans_ops import nearest
from sidlib.quantizers.rq_kmeans import RQKMeans
from sidlib.validation import as_float_matrix, as_tensor

#: Largest bit budget turned into ``k = 2 ** bits`` automatically; beyond it k-means++ and the
#: ``[n, k]`` assignment get too expensive to be a sensible default, so ``k`` must be explicit.
MAX_DEFAULT_BITS = 16


class KMeans(RQKMeans):
    """k-means with ``k`` clusters (``k`` defaults to ``2 ** bits`` for ``bits <= 16``).

    Args:
        dim: embedding dimension.
        bits: code budget, used only when ``k`` is not given.
        k: number of clusters.
        max_iter, tol, seed, device, encode_batch_size: as for :class:`RQKMeans`.
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
        super().__init__(dim, bits=bits, levels=1, codebook_size=k, beam_size=1, max_iter=max_iter, tol=tol,
                         seed=seed, device=device, encode_batch_size=encode_batch_size)

    @property
    def k(self) -> int:
        return self.codebook_size

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
