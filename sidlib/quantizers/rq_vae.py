"""Residual vector quantization trained by gradient (the quantizer of RQ-VAE).

``levels`` codebooks of ``codebook_size`` vectors; each level encodes the residual left by the
previous ones with its nearest codeword. Three things keep a gradient-trained RQ healthy:
k-means initialisation of each level on the residuals of a sample, dead-code reset (a codeword
unused for a window of steps moves onto a recent residual), and quantizer dropout (a random share of
rows is reconstructed from only its first ``j`` levels, so every prefix stays a good code).
By default it runs inside the VQ-VAE (``default_vae``).

After training, a few residual k-means iterations over the whole training set refine the learned
codebooks (:meth:`RQVAE.refine`). Dead-code reset puts a dead codeword on one residual, which in
64 dimensions then serves a handful of training rows: training items use every code, unseen items
did not (on the MiniLM benchmark held-out items used 80% of a level's codes, training items 99.6%). The refinement re-seeds clusters below ``min_cluster_share`` of the average size
by bisecting big ones, as :class:`~sidlib.quantizers.rq_kmeans.RQKMeans` does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import BatchStream, QuantizeOutput
from sidlib.quantizers.kmeans_ops import nearest
from sidlib.quantizers.labels import LabelSymmetry, Relabel, renumber_lines
from sidlib.quantizers.residual import ResidualQuantizer, prefix_loss
from sidlib.quantizers.rq_kmeans import RQKMeans
from sidlib.quantizers.warm_start import lloyd


class DeadCodes:
    """Counts the use of every codeword over ``window`` training steps; at the end of each window
    the unused ones are re-seeded with random residuals of the latest batch at their level."""

    def __init__(self, codebooks: nn.Parameter, window: int, generator: torch.Generator):
        self.codebooks, self.window, self.generator = codebooks, window, generator
        self.counts = torch.zeros(codebooks.shape[:2], device=codebooks.device)
        self.recent: list[torch.Tensor | None] = [None] * codebooks.shape[0]
        self.steps = 0

    def observe(self, level: int, codes: torch.Tensor, residual: torch.Tensor) -> None:
        self.counts[level] += torch.bincount(codes, minlength=self.counts.shape[1])
        self.recent[level] = residual

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.window:
            return
        for level, residual in enumerate(self.recent):
            dead = (self.counts[level] == 0).nonzero().squeeze(1)
            if residual is not None and len(dead):
                pick = torch.randint(len(residual), (len(dead),), generator=self.generator).to(residual.device)
                self.codebooks[level, dead] = residual[pick]
        self.counts.zero_()


class RQVAE(ResidualQuantizer):
    """``levels`` x ``codebook_size`` codes; ``levels`` defaults to ``round(bits / log2(codebook_size))``
    (24 bits -> 3 x 256). ``beta`` weights the commitment term, ``quantizer_dropout`` is the share of
    training rows truncated to a random number of levels, ``dead_code_window`` the steps over which an
    unused codeword counts as dead. ``refine_iterations`` caps the Lloyd iterations per level of the
    post-training refinement (0 skips it) and ``min_cluster_share`` is its dead-cluster threshold (see
    :class:`~sidlib.quantizers.rq_kmeans.RQKMeans`). ``kwargs``: ``seed``, ``device``,
    ``encode_batch_size`` and the :class:`~sidlib.quantizers.training.TrainSettings` fields."""

    name = "rq_vae"
    default_vae: ClassVar[bool] = True

    def __init__(
        self, dim: int, bits: float = 24, *, codebook_size: int = 256, levels: int | None = None, beta: float = 0.25,
        quantizer_dropout: float = 0.2, dead_code_window: int = 50, refine_iterations: int = 10,
        min_cluster_share: float = 0.25, **kwargs: Any,
    ):
        super().__init__(dim, **kwargs)
        if levels is None:
            levels = round(bits / math.log2(codebook_size)) if codebook_size > 1 else 0
        if (codebook_size < 2 or levels < 1 or not 0 <= quantizer_dropout <= 1 or dead_code_window < 1
                or refine_iterations < 0 or not 0 <= min_cluster_share < 1):
            raise InvalidInputError(
                f"need codebook_size >= 2, levels >= 1, 0 <= quantizer_dropout <= 1, dead_code_window >= 1, "
                f"refine_iterations >= 0, 0 <= min_cluster_share < 1; got {codebook_size}, {levels}, "
                f"{quantizer_dropout}, {dead_code_window}, {refine_iterations}, {min_cluster_share}"
            )
        self.codebook_size, self.levels, self.codes_per_level = int(codebook_size), int(levels), 1
        self.beta, self.quantizer_dropout, self.dead_code_window = float(beta), float(quantizer_dropout), int(dead_code_window)
        self.refine_iterations, self.min_cluster_share = int(refine_iterations), float(min_cluster_share)
        self.codebooks = nn.Parameter(torch.zeros(self.levels, self.codebook_size, dim))
        self._dead_codes: DeadCodes | None = None

    @property
    def cardinalities(self) -> list[int]:
        return [self.codebook_size] * self.levels

    def _levels(self, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Greedy residual encoding of ``x``, level by level: codes ``[n]`` and codewords ``[n, dim]``
        (differentiable in the codebooks); in training it also feeds dead-code tracking. A generator,
        so encoding keeps one level's codewords in memory at a time."""
        residual = x.detach()
        for level in range(self.levels):
            codes = nearest(residual, self.codebooks[level])[1][:, 0]
            if self.training and self._dead_codes is not None:
                self._dead_codes.observe(level, codes, residual)
            codeword = self.codebooks[level][codes]
            yield codes, codeword
            residual = residual - codeword.detach()

    def label_symmetries(self) -> list[LabelSymmetry]:
        """A level's codes are unordered: any permutation of its codebook."""
        return [LabelSymmetry.permutation(self.codebook_size)] * self.levels

    def _relabel_position(self, position: int, relabel: Relabel) -> None:
        self.codebooks[position] = renumber_lines(self.codebooks[position], relabel)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([codes for codes, _ in self._levels(x)], 1)

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[1]))

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """``z_q`` has the value of the (in training, possibly truncated) codeword sum, the identity
        gradient to ``z`` and the codebooks' own gradient."""
        codes, codewords = (torch.stack(parts, 1) for parts in zip(*self._levels(z)))
        kept = codewords * self._kept_levels(len(z))[:, :, None] if self.training and self.quantizer_dropout else codewords
        return QuantizeOutput(z_q=kept.sum(1) + z - z.detach(), codes=codes, loss=prefix_loss(z, codewords, self.beta))

    def _kept_levels(self, n: int) -> torch.Tensor:
        """``[n, levels]`` 0/1 mask: a ``quantizer_dropout`` share of rows keeps only its first ``j``
        levels, ``j`` uniform in ``1..levels``; the other rows keep all."""
        keep = torch.full((n,), self.levels)
        dropped = torch.rand(n, generator=self.generator) < self.quantizer_dropout
        keep[dropped] = torch.randint(1, self.levels + 1, (int(dropped.sum()),), generator=self.generator)
        return (torch.arange(self.levels) < keep[:, None]).float().to(self.torch_device)

    def init_from_sample(self, sample: torch.Tensor) -> None:
        """Greedy residual k-means (a few Lloyd steps per level)."""
        residual = sample
        for level in range(self.levels):
            centers, labels = lloyd(residual, self.codebook_size, self.generator)
            self.codebooks[level] = centers
            residual = residual - centers[labels]

    def begin_training(self) -> None:
        """Start dead-code tracking on the codebooks training starts from (initialised or warm)."""
        self._dead_codes = DeadCodes(self.codebooks, self.dead_code_window, self.generator)

    def after_train_step(self) -> None:
        if self._dead_codes is not None:
            self._dead_codes.step()

    @torch.no_grad()
    def refine(self, batches: BatchStream) -> bool:
        """Greedy residual k-means over the whole stream, level by level, started from the trained
        codebooks (up to ``refine_iterations`` Lloyd steps each, tiny clusters split); the codebooks
        take the result. Greedy like :meth:`encode_tensor`, so the refined levels serve what encoding sees."""
        if not self.refine_iterations:
            return False
        kmeans = RQKMeans(self.dim, levels=self.levels, codebook_size=self.codebook_size, beam_size=1,
                          min_cluster_share=self.min_cluster_share, max_iter=self.refine_iterations,
                          seed=self.seed, device=str(self.torch_device), encode_batch_size=self.encode_batch_size,
                          refine_rounds=0)  # level by level only: the codebooks stay greedy ones, as encoding
        kmeans.start_from(self.codebooks).fit_stream(batches)
        self.codebooks.copy_(kmeans.codebooks)
        return True
