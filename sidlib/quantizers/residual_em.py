"""The residual EM scaffolding shared by ``rq_kmeans``, ``rq_gmm`` and ``kmeans`` (one level).

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
from sidlib.quantizers.base import EMQuantizer, Quantizer, add_statistics
from sidlib.quantizers.joint_refinement import MIN_GAIN, code_statistics, solve_codebooks
from sidlib.quantizers.kmeans_ops import kmeans_plus_plus, reseed_empty
from sidlib.quantizers.labels import LabelSymmetry, Relabel, renumber_lines
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
    _start_refined: bool
    _refine_previous: tuple[float, torch.Tensor] | None

    def __init__(self, dim: int, *, bits: float, levels: int, codebook_size: int | None, max_iter: int, tol: float,
                 seed: int, device: str | None, encode_batch_size: int, refine_rounds: int = 0,
                 refine_prefix_weight: float = 0.0):
        super().__init__(dim, seed=seed, device=device, encode_batch_size=encode_batch_size)
        self.levels, self.codebook_size = residual_layout(bits, levels, codebook_size)
        if int(refine_rounds) != refine_rounds or refine_rounds < 0:
            raise InvalidInputError(f"refine_rounds must be a non-negative integer, got {refine_rounds}")
        if not refine_prefix_weight >= 0:
            raise InvalidInputError(f"refine_prefix_weight must be >= 0, got {refine_prefix_weight}")
        self.refine_rounds = int(refine_rounds) if self.levels > 1 else 0  # one level: Lloyd already is joint
        self.refine_prefix_weight = float(refine_prefix_weight)
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

    #: Buffers ``[levels, codebook_size, ...]`` that hold one entry per code (subclasses add theirs).
    per_code_buffers: tuple[str, ...] = ("codebooks",)

    def label_symmetries(self) -> list[LabelSymmetry]:
        """A level's codes are unordered: any permutation of its codebook."""
        return [LabelSymmetry.permutation(self.codebook_size)] * self.levels

    def _relabel_position(self, position: int, relabel: Relabel) -> None:
        for name in self.per_code_buffers:
            buffer = getattr(self, name)
            buffer[position] = renumber_lines(buffer[position], relabel)

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

    def _warm_start_from(self, previous: Quantizer) -> None:
        """Every level starts from ``previous``'s codebooks (EM then only moves them as far as the new
        data asks)."""
        self.start_from(previous.codebooks)  # type: ignore[arg-type]
        self._start_refined = bool(previous.refine_rounds)  # type: ignore[attr-defined]

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

    # ---------------------------------------------------------- joint refinement
    @torch.no_grad()
    def refinement_statistics(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Code counts, co-occurrences, per-code row sums and the squared error of ``X`` under the
        current codebooks (:func:`joint_refinement.code_statistics`)."""
        X = as_float_matrix(X, self.dim)
        parts = []
        for start in range(0, X.shape[0], self.encode_batch_size):
            x = as_tensor(X[start:start + self.encode_batch_size]).to(self.torch_device)
            codes = self.encode_tensor(x)
            parts.append(code_statistics(x, codes, self.decode_tensor(codes), self.codebook_size))
        return add_statistics(parts)

    @torch.no_grad()
    def apply_refinement(self, stats: Mapping[str, np.ndarray], *, solve: bool) -> bool:
        """Keep the codebooks the statistics were taken with if the last round lowered the error
        (``stats["sse"]``) by at least :data:`joint_refinement.MIN_GAIN`, else go back to the codebooks
        before that round and stop; with ``solve``, then move every level's codewords to the joint
        least-squares solution for these codes."""
        sse = float(stats["sse"])
        previous = self._refine_previous
        if previous is not None and (previous[0] - sse) < MIN_GAIN * previous[0]:
            self.codebooks.copy_(previous[1])
            return False
        self._refine_previous = (sse, self.codebooks.clone())
        if not solve:
            return False
        self.codebooks.copy_(solve_codebooks(stats, self.levels, self.codebook_size, self.refine_prefix_weight,
                                             self.codebooks))
        return True

    def level_iterations(self) -> int:
        """A warm start from a jointly refined fit, with refinement on, goes straight to the joint
        rounds: Lloyd steps would first pull the refined codebooks back to level-wise ones."""
        return 0 if self._start_refined and self.refine_rounds else self.max_iter

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
        return {"_sample": None, "_sample_level": -1, "_objective": None, "_start": None, "_start_refined": False,
                "_refine_previous": None}

    def _drop_training_state(self) -> None:
        self.__dict__.update(self._training_state())

    def finish_fit(self) -> None:
        """Drop the training sample before marking the model fitted."""
        self._drop_training_state()
        super().finish_fit()
