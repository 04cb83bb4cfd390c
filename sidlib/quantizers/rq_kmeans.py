"""Residual k-means (RQ-KMeans): each level a k-means codebook on the residuals of the levels before
it, encoded greedily or by beam search (the residual EM scaffolding is :mod:`.residual_em`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.kmeans_ops import (
    MIN_CLUSTER_SHARE, assignment_statistics, beam_assign, beam_paths, beam_search, cluster_sums, lloyd_update,
    nearest, path_cluster_sums, path_residuals,
)
from sidlib.quantizers.residual_em import ResidualEMQuantizer

#: Joint refinement rounds by default (each stops early once the error improves by less than ``tol``).
REFINE_ROUNDS = 10
#: Default weight of the shorter prefixes in the refinement objective.
REFINE_PREFIX_WEIGHT = 0.1


class RQKMeans(ResidualEMQuantizer):
    """Residual k-means: each level is a k-means codebook fit on the previous levels' residuals.

    Args:
        dim: embedding dimension.
        bits: code budget; with the defaults ``levels=3`` and ``codebook_size=2 ** round(bits / levels)``.
        levels, codebook_size: explicit layout (override ``bits``).
        beam_size: encode keeps this many best partial reconstructions per level (1 = greedy). A
            fitted model can be re-encoded with another beam (rebuild with ``beam_size`` changed and
            ``load_weights``).
        train_beam_size: paths per row the levels are trained on (default: ``beam_size``). Level
            ``l`` is fit on the residuals of *all* the ``train_beam_size`` best paths through levels
            ``< l`` (as FAISS's ``ResidualQuantizer`` trains with ``max_beam_size``), so its codebook
            serves the residuals a beam search of that width will try, not only the greedy one. The
            E-step of a level costs up to ``train_beam_size`` times more. 1 trains on greedy residuals.
            (The joint refinement rounds encode with ``beam_size``, as the fitted model will.)
        min_cluster_share: a cluster holding fewer than this share of an average cluster's rows
            (``rows / codebook_size``) after an E-step is dead and is re-seeded like an empty one, by
            bisecting a big cluster (:func:`kmeans_ops.split_clusters`). Such tiny clusters sit on a
            few isolated training rows (deep residual levels have many) and unseen rows rarely use
            their codes; 0 re-seeds only empty clusters.
        max_iter, tol: Lloyd iterations per level; stop when the relative SSE change is below ``tol``.
        refine_rounds: after the levels, rounds of joint refinement of all levels' codewords
            (:mod:`.joint_refinement`: beam encode, then the least-squares codebook step), each kept only
            if it lowers the training error; 0 turns it off.
        refine_prefix_weight: how much the refinement also weighs each shorter prefix's reconstruction
            (0: only the full SID's, which costs the first codes' own quality).
        seed: seeds k-means++ (per level) and the shuffling of in-memory training data.
        device: ``auto``/``cpu``/``cuda``; computation runs wherever the module's buffers are.
        encode_batch_size: rows per chunk in encode/decode and in the E-step.

    Statistics per level: ``count`` ``[k]``, ``sum`` ``[k, dim]``, ``cluster_sse`` ``[k]`` (squared
    error per cluster) and ``sse`` (the objective).
    """

    name = "rq_kmeans"

    def __init__(self, dim: int, bits: float = 24, levels: int = 3, codebook_size: int | None = None,
                 beam_size: int = 1, train_beam_size: int | None = None,
                 min_cluster_share: float = MIN_CLUSTER_SHARE, max_iter: int = 25, tol: float = 1e-4, seed: int = 0,
                 device: str | None = "auto", encode_batch_size: int = 65536, refine_rounds: int = REFINE_ROUNDS,
                 refine_prefix_weight: float = REFINE_PREFIX_WEIGHT):
        super().__init__(dim, bits=bits, levels=levels, codebook_size=codebook_size, max_iter=max_iter, tol=tol,
                         seed=seed, device=device, encode_batch_size=encode_batch_size, refine_rounds=refine_rounds,
                         refine_prefix_weight=refine_prefix_weight)
        if int(beam_size) != beam_size or beam_size < 1:
            raise InvalidInputError(f"beam_size must be a positive integer, got {beam_size}")
        if train_beam_size is None:
            train_beam_size = beam_size
        if int(train_beam_size) != train_beam_size or train_beam_size < 1:
            raise InvalidInputError(f"train_beam_size must be a positive integer, got {train_beam_size}")
        if not 0 <= min_cluster_share < 1:
            raise InvalidInputError(f"min_cluster_share must be in [0, 1), got {min_cluster_share}")
        self.beam_size, self.train_beam_size = int(beam_size), int(train_beam_size)
        self.min_cluster_share = float(min_cluster_share)

    def _encode_levels(self, x: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        return beam_search(x, self.codebooks[:n_levels], self.beam_size)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return beam_paths(x, self.codebooks, self.beam_size)[:, 0]

    def _training_residual(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Residuals of every one of the ``train_beam_size`` best paths through levels ``< level``:
        ``[rows * width, dim]``; each depends on its own row only, so the statistics stay additive."""
        books = self.codebooks[:level]
        return path_residuals(x, books, beam_paths(x, books, self.train_beam_size))

    def _sample_residual(self, x: torch.Tensor, level: int, rng: np.random.Generator) -> torch.Tensor:
        """The residual of one of the row's ``train_beam_size`` paths, drawn uniformly: an unbiased
        sample of the rows level ``level`` is trained on, as many as there are sample rows (the
        driver keeps them, and k-means++ costs ``O(rows * k * dim)``)."""
        books = self.codebooks[:level]
        paths = beam_paths(x, books, self.train_beam_size)
        if paths.shape[1] > 1:
            pick = torch.as_tensor(rng.integers(0, paths.shape[1], size=x.shape[0]), device=x.device)
            paths = paths[torch.arange(x.shape[0], device=x.device), pick].unsqueeze(1)
        return path_residuals(x, books, paths)

    def _chunk_statistics(self, level: int, x: torch.Tensor) -> dict[str, np.ndarray]:
        """Assignments of the residuals of all ``train_beam_size`` paths from
        :func:`kmeans_ops.beam_assign` and their sums from :func:`kmeans_ops.path_cluster_sums`:
        no GEMM on, and no copy of, the ``width`` residuals of each row."""
        paths, dist, ids = beam_assign(x, self.codebooks[:level + 1], self.train_beam_size)
        counts, sums = path_cluster_sums(x, self.codebooks[:level], paths, ids, self.codebook_size)
        return assignment_statistics(counts, sums, dist, ids, self.codebook_size)

    def _residual_statistics(self, level: int, residual: torch.Tensor) -> dict[str, np.ndarray]:
        """The same statistics from explicit residual rows (the reference :meth:`_chunk_statistics`
        is equal to, up to float32 rounding of the distances)."""
        dist, ids = nearest(residual, self.codebooks[level])
        counts, sums = cluster_sums(ids[:, 0], residual, self.codebook_size)
        return assignment_statistics(counts, sums, dist[:, 0], ids[:, 0], self.codebook_size)

    @torch.no_grad()
    def apply_statistics(self, level: int, stats: Mapping[str, np.ndarray]) -> float:
        """Lloyd M-step (:func:`kmeans_ops.lloyd_update`): each codeword moves to the mean of its rows;
        dead ones (empty, or below ``min_cluster_share`` of the average size) are re-seeded by
        splitting big clusters."""
        self._start_m_step(level)
        reseeded = lloyd_update(self.codebooks[level], stats, self._sample, self.min_cluster_share)
        return self._objective_change(float(stats["sse"]), reseeded)
