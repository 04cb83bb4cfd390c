"""What the residual neural quantizers (structured/DPCA, RQ-VAE) share: a level-major code layout
whose prefixes decode, the prefix (Matryoshka) loss, and a view that serves a prefix as a quantizer
of its own.

Codes are level-major: level ``l`` owns positions ``l * P .. (l + 1) * P - 1`` (``P`` = positions per
level, e.g. the product groups), so the first ``m * P`` positions are the first ``m`` levels and
decoding them alone is a valid, coarser reconstruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import BatchStream, Quantizer
from sidlib.quantizers.training import NeuralQuantizer


def prefix_loss(z: torch.Tensor, codewords: torch.Tensor, beta: float) -> torch.Tensor:
    """VQ loss over every prefix: mean over levels ``l`` of the codebook term
    ``||sg(z) - q_<=l||^2`` plus ``beta`` times the commitment term ``||z - sg(q_<=l)||^2``.

    ``codewords`` is ``[n, levels, dim]`` and carries gradients to the codebook only. Averaging over
    prefixes (rather than only the full sum) is what keeps short prefixes good. Divided by the mean
    ``||z||^2`` so the weight against the reconstruction loss does not depend on the latent scale
    (and the encoder cannot lower it by shrinking its output).
    """
    prefixes = codewords.cumsum(1)
    target = z.detach()
    codebook = (target[:, None] - prefixes).pow(2).sum(2).mean()
    commitment = (z[:, None] - prefixes.detach()).pow(2).sum(2).mean()
    return (codebook + beta * commitment) / target.pow(2).sum(1).mean().clamp_min(1e-12)


class ResidualQuantizer(NeuralQuantizer):
    """A neural quantizer whose ``levels`` levels of ``codes_per_level`` positions each are encoded
    greedily on the residual. Subclasses set both attributes and make :meth:`decode_tensor` accept any
    whole-level prefix of the codes (``m * codes_per_level`` columns)."""

    levels: int
    codes_per_level: int

    def prefix_codes(self, n_levels: int) -> int:
        """Number of code positions of the first ``n_levels`` levels (checked to be 1..levels)."""
        if not 1 <= n_levels <= self.levels:
            raise InvalidInputError(f"prefix must keep 1..{self.levels} levels, got {n_levels}")
        return n_levels * self.codes_per_level

    def prefix(self, n_levels: int) -> "PrefixView":
        """The coarser quantizer made of the first ``n_levels`` levels: ``q.prefix(m).decode(codes[:, :m * P])``
        reconstructs from a code prefix; ``q.prefix(m).encode(X)`` equals ``q.encode(X)[:, :m * P]``."""
        return PrefixView(self, self.prefix_codes(n_levels))


class PrefixView(Quantizer):
    """A fitted quantizer restricted to its first ``n_codes`` positions (shares, never copies, the
    parent's state). ``parent.decode_tensor`` must accept that many columns. It is for evaluation and
    serving of coarse SIDs; fit and save the parent instead."""

    name = "prefix"

    def __init__(self, parent: Quantizer, n_codes: int):
        super().__init__(parent.dim, seed=parent.seed, device=parent.device_preference,
                         encode_batch_size=parent.encode_batch_size)
        object.__setattr__(self, "parent", parent)  # not a submodule: the view owns no state
        self._n_codes = n_codes
        self.training = parent.training

    @property
    def cardinalities(self) -> list[int]:
        return self.parent.cardinalities[: self._n_codes]

    @property
    def is_fitted(self) -> bool:
        return self.parent.is_fitted

    @property
    def torch_device(self) -> torch.device:
        return self.parent.torch_device

    def train(self, mode: bool = True) -> "PrefixView":
        self.training = mode
        self.parent.train(mode)
        return self

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.parent.encode_tensor(x)[:, : self._n_codes]

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return self.parent.decode_tensor(codes)

    def fit_stream(self, batches: BatchStream) -> "PrefixView":
        raise InvalidInputError("a prefix view cannot be fitted: fit the full quantizer")

    def save(self, path: str | Path) -> Any:
        raise InvalidInputError("a prefix view cannot be saved: save the full quantizer")
