"""Residual Gaussian mixtures (RQ-GMM): each level is a diagonal-covariance GMM on the residuals.

Compared with residual k-means, the E-step is soft (every row contributes to every component in
proportion to its responsibility) and each component learns its own per-dimension spread and weight,
so the code of a row is the most probable component rather than the nearest mean. Codes still
decode to the sum of the chosen means, and the residual passed to the next level is ``x - mu_code``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import Quantizer
from sidlib.quantizers.kmeans_ops import row_blocks, split_clusters
from sidlib.quantizers.residual_em import ResidualEMQuantizer

#: A component whose total responsibility is below one row's worth is dead: its mean and variance
#: cannot be estimated, so it is re-seeded like an empty k-means cluster (``min_component_share``
#: raises the bar).
MIN_COMPONENT_MASS = 1.0


@dataclass(frozen=True)
class DiagGaussians:
    """A diagonal GMM rearranged for matmul-form log-densities.

    ``log(w_k N(x | mu_k, var_k)) = x^2 . (-1 / (2 var_k)) + x . (mu_k / var_k) + c_k`` with
    ``c_k = log w_k - (sum log(2 pi var_k) + sum mu_k^2 / var_k) / 2``: two GEMMs per block instead of an
    ``[n, k, dim]`` tensor. ``c_k`` is formed in float64 (it sums large terms); the variance floor keeps
    ``1 / var`` bounded so the float32 expansion does not lose the quadratic form.
    """

    quad: torch.Tensor   # [dim, k]
    lin: torch.Tensor    # [dim, k]
    const: torch.Tensor  # [k]

    @classmethod
    def from_params(cls, means: torch.Tensor, variances: torch.Tensor, log_weights: torch.Tensor) -> "DiagGaussians":
        mu, var = means.double(), variances.double()
        const = log_weights.double() - 0.5 * (
            torch.log(2 * math.pi * var).sum(1) + (mu * mu / var).sum(1)
        )
        return cls(quad=(-0.5 / var).T.float().contiguous(), lin=(mu / var).T.float().contiguous(), const=const.float())

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, k]`` log of weight times density of each row under each component."""
        return torch.addmm(self.const.unsqueeze(0), x * x, self.quad).addmm_(x, self.lin)


class RQGMM(ResidualEMQuantizer):
    """Residual diagonal-covariance Gaussian mixtures, fit by EM level by level.

    Args:
        dim: embedding dimension.
        bits, levels, codebook_size: layout, same rule as :class:`~sidlib.quantizers.rq_kmeans.RQKMeans`
            (default 3 levels of ``2 ** round(bits / 3)`` components).
        var_floor: variances are floored at ``var_floor`` times the per-dimension variance of the level's
            residuals (relative, because residuals shrink level after level); prevents components from
            collapsing onto a few points.
        min_component_share: a component whose responsibility mass is below this share of an average
            component's (``rows / codebook_size``) is dead and re-seeded, by bisecting a big component
            (:func:`~sidlib.quantizers.kmeans_ops.split_clusters`), as ``RQKMeans`` does with tiny
            clusters: components left on a few isolated training rows are almost never the most
            probable one for unseen rows. 0 re-seeds only components below one row's mass.
        max_iter, tol: EM iterations per level; stop when the mean log-likelihood changes by less
            than ``tol`` relatively.
        seed, device, encode_batch_size: as for ``RQKMeans``.

    Init per level: k-means++ means on the sample's residuals, every variance set to the residuals'
    per-dimension variance, uniform weights. Statistics per level: ``count``/``sum``/``sum_sq``
    (responsibility-weighted), ``n``, ``log_likelihood`` and ``entropy`` (of the responsibilities).
    """

    name = "rq_gmm"
    _floor: torch.Tensor | None
    _init_variance: torch.Tensor | None
    _start_mixture: tuple[torch.Tensor, torch.Tensor] | None

    #: A component is its mean (the codebook row), its variances and its weight: relabelled together.
    per_code_buffers = ("codebooks", "variances", "log_weights")

    def __init__(self, dim: int, bits: float = 24, levels: int = 3, codebook_size: int | None = None,
                 var_floor: float = 1e-3, min_component_share: float = 0.25, max_iter: int = 25, tol: float = 1e-4,
                 seed: int = 0, device: str | None = "auto", encode_batch_size: int = 65536, refine_rounds: int = 0,
                 refine_prefix_weight: float = 0.1):
        super().__init__(dim, bits=bits, levels=levels, codebook_size=codebook_size, max_iter=max_iter, tol=tol,
                         seed=seed, device=device, encode_batch_size=encode_batch_size, refine_rounds=refine_rounds,
                         refine_prefix_weight=refine_prefix_weight)
        if not var_floor > 0:
            raise InvalidInputError(f"var_floor must be > 0, got {var_floor}")
        if not 0 <= min_component_share < 1:
            raise InvalidInputError(f"min_component_share must be in [0, 1), got {min_component_share}")
        self.var_floor = float(var_floor)
        self.min_component_share = float(min_component_share)
        shape = (self.levels, self.codebook_size)
        self.register_buffer("variances", torch.ones(shape + (self.dim,)))
        self.register_buffer("log_weights", torch.full(shape, -math.log(self.codebook_size)))
        self.register_buffer("responsibility_entropy", torch.zeros(self.levels))
        self.register_buffer("log_likelihood", torch.zeros(self.levels))

    def _gaussians(self, level: int) -> DiagGaussians:
        return DiagGaussians.from_params(self.codebooks[level], self.variances[level], self.log_weights[level])

    def _encode_levels(self, x: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Most probable component per level; the next level sees ``x - mu_code``."""
        residual = x.clone()
        codes = torch.empty((x.shape[0], n_levels), dtype=torch.int64, device=x.device)
        for level in range(n_levels):
            gaussians = self._gaussians(level)
            for rows in row_blocks(x.shape[0], max(self.codebook_size, self.dim)):
                codes[rows, level] = gaussians.log_joint(residual[rows]).argmax(dim=1)
            residual -= self.codebooks[level].index_select(0, codes[:, level])
        return codes, residual

    @torch.no_grad()
    def init_level(self, level: int, sample: np.ndarray) -> None:
        super().init_level(level, sample)
        spread = self._sample.double().var(dim=0, unbiased=False)
        self._init_variance = spread.clamp_min(1e-12).float()
        self._floor = (self.var_floor * spread).clamp_min(1e-12).float()
        self.variances[level] = self._init_variance
        self.log_weights[level] = -math.log(self.codebook_size)
        if self._start_mixture is not None:  # warm start: the previous fit's components, not just its means
            self.variances[level], self.log_weights[level] = (t[level] for t in self._start_mixture)

    def _warm_start_from(self, previous: Quantizer) -> None:
        super()._warm_start_from(previous)
        self._start_mixture = (previous.variances.detach().clone(), previous.log_weights.detach().clone())  # type: ignore[operator]

    def _residual_statistics(self, level: int, residual: torch.Tensor) -> dict[str, np.ndarray]:
        """Soft E-step: responsibilities by a stable softmax (logsumexp), moments summed in float64."""
        gaussians = self._gaussians(level)
        k, dim = self.codebook_size, self.dim
        counts = torch.zeros(k, dtype=torch.float64, device=residual.device)
        moments = torch.zeros((k, 2 * dim), dtype=torch.float64, device=residual.device)
        log_likelihood = torch.zeros((), dtype=torch.float64, device=residual.device)
        entropy = torch.zeros((), dtype=torch.float64, device=residual.device)
        for rows in row_blocks(residual.shape[0], max(k, 2 * dim)):
            r = residual[rows]
            log_joint = gaussians.log_joint(r)
            log_evidence = torch.logsumexp(log_joint, dim=1, keepdim=True)
            log_resp = log_joint - log_evidence
            resp = log_resp.exp()
            log_likelihood += log_evidence.double().sum()
            entropy -= (resp * log_resp).double().sum()
            resp64, r64 = resp.double(), r.double()
            counts += resp64.sum(0)
            moments += resp64.T @ torch.cat([r64, r64 * r64], dim=1)
        return {
            "count": counts.cpu().numpy(),
            "sum": moments[:, :dim].cpu().numpy(),
            "sum_sq": moments[:, dim:].cpu().numpy(),
            "n": np.asarray(float(residual.shape[0])), "log_likelihood": np.asarray(log_likelihood.item()),
            "entropy": np.asarray(entropy.item()),
        }

    @torch.no_grad()
    def apply_statistics(self, level: int, stats: Mapping[str, np.ndarray]) -> float:
        """M-step: weights = mass / n, means and floored variances from the weighted moments. Dead
        components (mass below ``min_component_share`` of the average) are re-seeded by bisecting the
        big components with the largest weighted squared error (or, with none left to split, at the
        worst-served sample residual), with the level's initial variance and a uniform-share weight.
        Records the E-step's mean log-likelihood and entropy."""
        self._start_m_step(level)
        dev = self.torch_device
        counts = torch.as_tensor(stats["count"], device=dev)
        sums, sums_sq = torch.as_tensor(stats["sum"], device=dev), torch.as_tensor(stats["sum_sq"], device=dev)
        n = float(stats["n"])
        live = counts >= MIN_COMPONENT_MASS
        mean = sums[live] / counts[live].unsqueeze(1)
        var = sums_sq[live] / counts[live].unsqueeze(1) - mean * mean
        self.codebooks[level][live] = mean.float()
        self.variances[level][live] = torch.maximum(var.float(), self._floor)
        weights = counts / n
        min_mass = max(MIN_COMPONENT_MASS, math.floor(self.min_component_share * n / self.codebook_size))
        spread = torch.zeros_like(counts)
        spread[live] = (sums_sq[live].sum(1) - (sums[live] * sums[live]).sum(1) / counts[live]).clamp_min(0.0)
        split = split_clusters(self.codebooks[level], counts < min_mass, counts, spread, self._sample, min_mass)
        moved = [cid for cid, _ in split]
        empty = ~live
        empty[moved] = False
        if bool(empty.any()):  # nothing left to split
            moved += self._reseed(level, empty)
        if moved:
            self.variances[level][moved] = self._init_variance
            weights[moved] = 1.0 / self.codebook_size
        weights = weights.clamp_min(1e-30)
        self.log_weights[level] = torch.log(weights / weights.sum()).float()
        mean_log_likelihood = float(stats["log_likelihood"]) / n
        self.log_likelihood[level] = mean_log_likelihood
        self.responsibility_entropy[level] = float(stats["entropy"]) / n
        return self._objective_change(mean_log_likelihood, bool(moved))

    def _training_state(self) -> dict[str, Any]:
        """Adds the level's variance floor and initial variance (used by the M-step only)."""
        return {**super()._training_state(), "_floor": None, "_init_variance": None, "_start_mixture": None}

    def extra_metrics(self) -> dict[str, float]:
        """Per level, from the last E-step of its fit: mean entropy (nats) of the responsibilities (0 =
        hard assignments, ``log k`` = uniform) and mean log-likelihood per row; plus their means."""
        metrics: dict[str, float] = {}
        for level in range(self.levels):
            metrics[f"responsibility_entropy_level{level}"] = float(self.responsibility_entropy[level])
            metrics[f"log_likelihood_level{level}"] = float(self.log_likelihood[level])
        metrics["responsibility_entropy_mean"] = float(self.responsibility_entropy.mean())
        metrics["log_likelihood_mean"] = float(self.log_likelihood.mean())
        return metrics
