"""Residual k-means (RQ-KMeans) and the residual EM scaffolding it shares with ``rq_gmm``/``kmeans``.

A residual quantizer has ``levels`` codebooks of ``codebook_size`` vectors; level ``l`` quantizes what
levels ``< l`` left unexplained, and the reconstruction is the sum of the chosen codewords. Because
each level only refines the previous ones, the first ``m`` codes alone decode to a coarser
reconstruction (:meth:`ResidualEMQuantizer.prefix`, :meth:`ResidualEMQuantizer.decode_prefix`): the
hierarchy Semantic IDs rely on.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Mapping

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import EMQuantizer, add_statistics
from sidlib.quantizers.kmeans_ops import (
    beam_assign, beam_paths, beam_search, cluster_sums, kmeans_plus_plus, nearest, path_cluster_sums, path_residuals,
    reseed_empty, split_clusters,
)
from sidlib.quantizers.residual import PrefixView
from sidlib.validation import as_float_matrix, as_tensor


#: Largest codebook per level. Codebooks are allocated when the quantizer is built and every encode
#: scores a batch against a whole level, so a larger one is refused up front rather than exhausting
#: memory (3 x 2**21 x 384 floats, the layout of 64 bits over 3 levels, took 9.7 GB before any data).
MAX_CODEBOOK_BITS = 16
MAX_CODEBOOK_SIZE = 2 ** MAX_CODEBOOK_BITS


def residual_layout(bits: float, levels: int, codebook_size: int | None) -> tuple[int, int]:
    """``(levels, codebook_size)`` for a bit budget: ``codebook_size`` defaults to
    ``2 ** round(bits / levels)`` (24 bits, 3 levels -> 3 x 256); an explicit size wins over ``bits``."""
    if int(levels) != levels or levels < 1:
        raise InvalidInputError(f"levels must be a positive integer, got {levels}")
    if codebook_size is None:
        if not 0 < bits < float("inf"):
            raise InvalidInputError(f"bits must be positive and finite, got {bits}")
        exponent = round(bits / levels)
        if exponent > MAX_CODEBOOK_BITS:
            raise InvalidInputError(f"{bits} bits over {levels} levels would need codebooks of 2**{exponent} codes "
                                    f"(at most 2**{MAX_CODEBOOK_BITS}): use more levels or fewer bits")
        codebook_size = 2 ** exponent
    if int(codebook_size) != codebook_size or not 2 <= codebook_size <= MAX_CODEBOOK_SIZE:
        raise InvalidInputError(f"codebook_size must be an integer in [2, {MAX_CODEBOOK_SIZE}], got {codebook_size}")
    return int(levels), int(codebook_size)


class ResidualEMQuantizer(EMQuantizer):
    """Residual codebooks fit level by level by EM; subclasses supply the per-level model.

    Subclasses implement :meth:`_encode_levels` (how a row picks its codes), :meth:`_residual_statistics`
    (E-step on residuals; or override :meth:`_chunk_statistics`, the E-step on raw rows) and
    :meth:`apply_statistics` (M-step). This class owns the layout, decoding, residual computation,
    greedy k-means++ initialisation and the empty-cluster remedy, so every residual model gets them
    identically.

    Training-only state (the initialisation sample's residuals, the previous objective; see
    :meth:`_training_state`) lives in plain attributes: it is needed between ``init_level`` and the
    last ``apply_statistics`` of a level on the process that drives the fit (the Spark driver), and is
    not part of the model shipped to executors (config + state dict), which only run the E-step.
    """

    _sample: torch.Tensor | None
    _sample_level: int
    _objective: float | None
    _start: torch.Tensor | None

    def __init__(self, dim: int, *, bits: float, levels: int, codebook_size: int | None, max_iter: int, tol: float,
                 seed: int, device: str | None, encode_batch_size: int):
        super().__init__(dim, seed=seed, device=device, encode_batch_size=encode_batch_size)
        self.levels, self.codebook_size = residual_layout(bits, levels, codebook_size)
        if int(max_iter) != max_iter or max_iter < 1:
            raise InvalidInputError(f"max_iter must be a positive integer, got {max_iter}")
        if not tol >= 0:
            raise InvalidInputError(f"tol must be >= 0, got {tol}")
        if encode_batch_size < 1:
            raise InvalidInputError(f"encode_batch_size must be positive, got {encode_batch_size}")
        self.max_iter, self.tol = int(max_iter), float(tol)
        self.register_buffer("codebooks", torch.zeros((self.levels, self.codebook_size, self.dim)))
        self._drop_training_state()

    # ----------------------------------------------------------------- layout
    @property
    def cardinalities(self) -> list[int]:
        return [self.codebook_size] * self.levels

    @property
    def n_levels(self) -> int:
        return self.levels

    # --------------------------------------------------------------- inference
    @abstractmethod
    def _encode_levels(self, x: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[b, n_levels]`` of ``x`` for the first ``n_levels`` levels, and the residual left."""

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode_levels(x, self.levels)[0]

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the codewords of the given levels (``codes`` may cover only the first levels)."""
        out = torch.zeros((codes.shape[0], self.dim), device=codes.device)
        for level in range(codes.shape[1]):
            out += self.codebooks[level].index_select(0, codes[:, level])
        return out

    def prefix_codes(self, n_levels: int) -> int:
        """Number of code positions of the first ``n_levels`` levels (one per level)."""
        if int(n_levels) != n_levels or not 1 <= n_levels <= self.levels:
            raise InvalidInputError(f"prefix must keep 1..{self.levels} levels, got {n_levels}")
        return int(n_levels)

    def prefix(self, n_levels: int) -> PrefixView:
        """The coarser quantizer made of the first ``n_levels`` levels, as for the neural residual
        quantizers: ``q.prefix(m).encode(X) == q.encode(X)[:, :m]`` and ``q.prefix(m).decode`` sums the
        first ``m`` codewords."""
        return PrefixView(self, self.prefix_codes(n_levels))

    def decode_prefix(self, codes: Any, levels: int) -> np.ndarray:
        """Coarse reconstruction from the first ``levels`` codes; ``codes`` is ``[n, levels]`` or the full
        ``[n, n_levels]`` (later columns ignored). ``decode_prefix(c, n_levels)`` equals ``decode(c)``."""
        view = self.prefix(levels)
        arr = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes)
        if arr.ndim == 2 and arr.shape[1] == self.levels:
            arr = arr[:, :levels]
        return view.decode(arr)

    # ---------------------------------------------------------------- training
    def _training_residual(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """What level ``level`` is trained on: the residual of ``x`` after the levels before it."""
        return self._encode_levels(x, level)[1]

    def _sample_residual(self, x: torch.Tensor, level: int, rng: np.random.Generator) -> torch.Tensor:
        """One training residual per sample row, which level ``level`` is seeded from (and re-seeds
        dead clusters from). ``rng`` serves subclasses that train on several residuals per row."""
        return self._training_residual(x, level)

    def _check_level(self, level: int) -> None:
        if int(level) != level or not 0 <= level < self.levels:
            raise InvalidInputError(f"level must be an integer in [0, {self.levels}), got {level}")

    def start_from(self, codebooks: torch.Tensor) -> "ResidualEMQuantizer":
        """Start the next fit's levels from ``codebooks`` ``[levels, codebook_size, dim]`` instead of
        k-means++: EM then refines codebooks learned another way (RQ-VAE's, by gradient) rather than
        discarding them. Cleared when the fit finishes."""
        expected = (self.levels, self.codebook_size, self.dim)
        if tuple(codebooks.shape) != expected:
            raise InvalidInputError(f"start codebooks must have shape {expected}, got {tuple(codebooks.shape)}")
        self._start = codebooks.detach().to(self.codebooks).clone()
        return self

    @torch.no_grad()
    def init_level(self, level: int, sample: np.ndarray) -> None:
        """Greedy k-means++ (``2 + ln k`` local trials, as scikit-learn) on the sample's residuals
        (one per row, :meth:`_sample_residual`), seeded by ``(seed, level)``, or the codebook given to
        :meth:`start_from`. Keeps those residuals for the dead-cluster remedy of this level's M-steps."""
        self._check_level(level)
        sample = as_float_matrix(sample, self.dim, name="sample")
        if sample.shape[0] < self.codebook_size:
            raise InvalidInputError(
                f"sample has {sample.shape[0]} rows, fewer than codebook_size={self.codebook_size}: "
                "need at least one training row per code"
            )
        rng = np.random.default_rng([self.seed, int(level)])
        self._sample = torch.cat([
            self._sample_residual(as_tensor(sample[start:start + self.encode_batch_size]).to(self.torch_device),
                                  level, rng)
            for start in range(0, sample.shape[0], self.encode_batch_size)
        ])
        self._sample_level = int(level)
        self._objective = None
        if self._start is not None:
            self.codebooks[level] = self._start[level]
            return
        trials = 2 + int(math.log(self.codebook_size))
        self.codebooks[level] = kmeans_plus_plus(self._sample, self.codebook_size, rng, local_trials=trials)

    def _residual_statistics(self, level: int, residual: torch.Tensor) -> dict[str, np.ndarray]:
        """E-step of level ``level`` on residual rows: additive float64 statistics (used by the
        default :meth:`_chunk_statistics`)."""
        raise NotImplementedError

    def _chunk_statistics(self, level: int, x: torch.Tensor) -> dict[str, np.ndarray]:
        """E-step of level ``level`` on one chunk of raw rows (on the device); by default
        :meth:`_residual_statistics` of :meth:`_training_residual`."""
        return self._residual_statistics(level, self._training_residual(x, level))

    @torch.no_grad()
    def level_statistics(self, level: int, X: np.ndarray) -> dict[str, np.ndarray]:
        self._check_level(level)
        X = as_float_matrix(X, self.dim)
        return add_statistics(
            self._chunk_statistics(level, as_tensor(X[start:start + self.encode_batch_size]).to(self.torch_device))
            for start in range(0, X.shape[0], self.encode_batch_size)
        )

    def _start_m_step(self, level: int) -> None:
        """Check that ``level`` was initialised on this object, which holds the state the M-step needs."""
        self._check_level(level)
        if self._sample is None or self._sample_level != level:
            raise InvalidInputError(f"init_level({level}, sample) must be called before apply_statistics({level}, ...)")

    def _reseed(self, level: int, empty: torch.Tensor) -> list[int]:
        """Re-seed the empty codewords of ``level`` from the worst-served sample residuals
        (:func:`kmeans_ops.reseed_empty`); returns the ids that moved."""
        return reseed_empty(self.codebooks[level], empty.to(self.torch_device), self._sample)

    def _objective_change(self, objective: float, reseeded: bool) -> float:
        """Relative change of the level's objective since the previous E-step (``inf`` on the first
        step, and after a re-seed, which changes the model non-monotonically and must not stop EM)."""
        previous, self._objective = self._objective, objective
        if previous is None or reseeded:
            return float("inf")
        return abs(previous - objective) / max(abs(objective), 1e-30)

    def _training_state(self) -> dict[str, Any]:
        """Fresh values of the training-only attributes (subclasses add theirs)."""
        return {"_sample": None, "_sample_level": -1, "_objective": None, "_start": None}

    def _drop_training_state(self) -> None:
        self.__dict__.update(self._training_state())

    def finish_fit(self) -> None:
        """Drop the training sample before marking the model fitted."""
        self._drop_training_state()
        super().finish_fit()


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
        min_cluster_share: a cluster holding fewer than this share of an average cluster's rows
            (``rows / codebook_size``) after an E-step is dead and is re-seeded like an empty one, by
            bisecting a big cluster (:func:`kmeans_ops.split_clusters`). Such tiny clusters sit on a
            few isolated training rows (deep residual levels have many) and unseen rows rarely use
            their codes; 0 re-seeds only empty clusters.
        max_iter, tol: Lloyd iterations per level; stop when the relative SSE change is below ``tol``.
        seed: seeds k-means++ (per level) and the shuffling of in-memory training data.
        device: ``auto``/``cpu``/``cuda``; computation runs wherever the module's buffers are.
        encode_batch_size: rows per chunk in encode/decode and in the E-step.

    Statistics per level: ``count`` ``[k]``, ``sum`` ``[k, dim]``, ``cluster_sse`` ``[k]`` (squared
    error per cluster) and ``sse`` (the objective).
    """

    name = "rq_kmeans"

    def __init__(self, dim: int, bits: float = 24, levels: int = 3, codebook_size: int | None = None,
                 beam_size: int = 1, train_beam_size: int | None = None, min_cluster_share: float = 0.25,
                 max_iter: int = 25, tol: float = 1e-4, seed: int = 0, device: str | None = "auto",
                 encode_batch_size: int = 65536):
        super().__init__(dim, bits=bits, levels=levels, codebook_size=codebook_size, max_iter=max_iter, tol=tol,
                         seed=seed, device=device, encode_batch_size=encode_batch_size)
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
        return self._assignment_statistics(counts, sums, dist, ids)

    def _residual_statistics(self, level: int, residual: torch.Tensor) -> dict[str, np.ndarray]:
        """The same statistics from explicit residual rows (the reference :meth:`_chunk_statistics`
        is equal to, up to float32 rounding of the distances)."""
        dist, ids = nearest(residual, self.codebooks[level])
        counts, sums = cluster_sums(ids[:, 0], residual, self.codebook_size)
        return self._assignment_statistics(counts, sums, dist[:, 0], ids[:, 0])

    def _assignment_statistics(self, counts: np.ndarray, sums: np.ndarray, dist: torch.Tensor, ids: torch.Tensor
                               ) -> dict[str, np.ndarray]:
        cluster_sse = torch.bincount(ids, weights=dist.double(), minlength=self.codebook_size)
        return {"count": counts, "sum": sums, "cluster_sse": cluster_sse.cpu().numpy(),
                "sse": np.asarray(cluster_sse.sum().item())}

    @torch.no_grad()
    def apply_statistics(self, level: int, stats: Mapping[str, np.ndarray]) -> float:
        """Lloyd M-step: each codeword moves to the mean of its rows; dead ones (empty, or below
        ``min_cluster_share`` of the average size) are re-seeded by splitting big clusters."""
        self._start_m_step(level)
        dev = self.torch_device
        counts = torch.as_tensor(stats["count"], device=dev)
        sums = torch.as_tensor(stats["sum"], device=dev)
        filled = counts > 0
        book = self.codebooks[level]
        book[filled] = (sums[filled] / counts[filled].unsqueeze(1)).float()
        min_size = max(1.0, math.floor(self.min_cluster_share * float(counts.sum()) / self.codebook_size))
        dead = counts < min_size
        split = split_clusters(book, dead, counts, torch.as_tensor(stats["cluster_sse"], device=dev),
                               self._sample, min_size)
        empty = ~filled
        empty[[cid for cid, _ in split]] = False
        moved = self._reseed(level, empty) if bool(empty.any()) else []  # nothing left to split
        return self._objective_change(float(stats["sse"]), bool(split or moved))
