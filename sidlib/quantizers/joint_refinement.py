"""Joint codebook refinement of a residual quantizer: the additive-quantization (LSQ) codebook step.

Level-wise training fits each level's codebook to the residuals the levels before it left, and never
revisits them. With the codes ``B`` (one-hot blocks per level) fixed, the codewords ``C`` of all levels
that minimise ``||X - B C||^2`` together solve the normal equations ``(B^T B) C = B^T X``. Their terms
are sums over rows (``B^T B`` counts how often two codes occur together, ``B^T X`` sums the rows per
code), so they are additive statistics like an EM step's and go through the same distributed path.
A round re-encodes the rows (the quantizer's own beam search) and solves again.

Fitting all levels jointly makes the sum of codewords better and the first levels' own reconstruction
worse (the first codeword no longer has to be the mean of its rows). ``prefix_weight`` trades that:
the objective is the full reconstruction plus ``prefix_weight`` times each shorter prefix's
(``sum_{m<M} ||X - B_{<m} C_{<m}||^2``); the same statistics give its normal equations.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

#: A round is kept only if it lowers the training error by at least this share; otherwise the
#: refinement goes back to the round before and stops. So it stops at a point one more round would
#: barely move, and a warm refit of unchanged data, which starts there, reproduces it.
MIN_GAIN = 1e-3
#: Ridge added to the normal equations, relative to the mean code count: keeps them solvable when two
#: codes always occur together, without moving well-determined codewords.
RIDGE = 1e-6


def code_statistics(x: torch.Tensor, codes: torch.Tensor, reconstruction: torch.Tensor,
                    codebook_size: int) -> dict[str, np.ndarray]:
    """Additive statistics of rows ``x`` ``[n, dim]`` with codes ``[n, levels]``: ``counts`` of each code
    (``[levels * K]``), ``pairs`` (co-occurrences of codes of different levels, ``[levels * K, levels * K]``
    with zero diagonal blocks), ``sums`` (``B^T X``, ``[levels * K, dim]``) and ``sse`` (the rows'
    squared reconstruction error)."""
    n, levels = codes.shape
    width = levels * codebook_size
    flat = (codes + torch.arange(levels, device=codes.device) * codebook_size).cpu().numpy()
    pairs = np.zeros(width * width, dtype=np.float64)
    for a in range(levels):
        for b in range(a + 1, levels):
            pairs += np.bincount(flat[:, a] * width + flat[:, b], minlength=width * width)
    pairs = pairs.reshape(width, width)
    sums = torch.zeros(width, x.shape[1], dtype=torch.float64, device=x.device)
    for a in range(levels):
        sums.index_add_(0, torch.as_tensor(flat[:, a], device=x.device), x.double())
    return {"counts": np.bincount(flat.ravel(), minlength=width).astype(np.float64), "pairs": pairs + pairs.T,
            "sums": sums.cpu().numpy(), "sse": np.array((x - reconstruction).double().pow(2).sum().item())}


def solve_codebooks(stats: Mapping[str, np.ndarray], levels: int, codebook_size: int, prefix_weight: float,
                    current: torch.Tensor) -> torch.Tensor:
    """The codebooks ``[levels, K, dim]`` minimising the weighted objective (module docstring) for the
    codes the statistics were taken with; codewords no row used keep their ``current`` value."""
    width = levels * codebook_size
    level_of = np.repeat(np.arange(levels), codebook_size)
    # prefix m (its first m levels) holds a pair of codes if m exceeds both levels: the full prefix
    # weighs 1, each shorter one prefix_weight
    weight = 1 + prefix_weight * (levels - 1 - np.maximum.outer(level_of, level_of))
    gram = stats["pairs"] * weight + np.diag(stats["counts"] * np.diag(weight))
    rhs = stats["sums"] * np.diag(weight)[:, None]
    used = stats["counts"] > 0
    gram += np.eye(width) * RIDGE * max(float(stats["counts"][used].mean()) if used.any() else 1.0, 1.0)
    solved = torch.linalg.solve(torch.from_numpy(gram), torch.from_numpy(rhs))
    previous = current.reshape(width, -1).double().cpu()
    solved = torch.where(torch.from_numpy(used)[:, None], solved, previous)
    return solved.reshape(current.shape).to(current)
