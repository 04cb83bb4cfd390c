"""Finite scalar quantization (FSQ): a linear projection to a few coordinates, each bounded and
rounded to a handful of levels (straight-through), and a linear projection back.

No codebook to learn or collapse: the code space is the grid of levels, and training only moves the
two projections. Cardinalities are the per-coordinate levels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sidlib.quantizers import scalar
from sidlib.quantizers.base import QuantizeOutput
from sidlib.quantizers.labels import LabelSymmetry, Relabel
from sidlib.quantizers.training import NeuralQuantizer, seeded
from sidlib.quantizers.warm_start import principal_axes, uniform_step


class FSQ(NeuralQuantizer):
    """``levels`` gives the number of levels of each latent coordinate; by default ternary digits
    filling ``bits`` (24 bits -> 15 coordinates of 3 levels, 23.77 bits). ``kwargs``: ``seed``,
    ``device``, ``encode_batch_size`` and the :class:`~sidlib.quantizers.training.TrainSettings` fields."""

    name = "fsq"

    def __init__(self, dim: int, bits: float = 24, *, levels: list[int] | None = None, **kwargs: Any):
        super().__init__(dim, **kwargs)
        self.levels = scalar.check_levels(levels if levels is not None else [3] * scalar.ternary_digits(bits))
        with seeded(self.seed):
            self.project_in = nn.Linear(dim, len(self.levels))
            self.project_out = nn.Linear(len(self.levels), dim)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.float32), persistent=False)

    @property
    def cardinalities(self) -> list[int]:
        return list(self.levels)

    def label_symmetries(self) -> list[LabelSymmetry]:
        """Each coordinate's levels are ordinal; negating the coordinate reverses them."""
        return [LabelSymmetry.ordinal(levels) for levels in self.levels]

    def _relabel_position(self, position: int, relabel: Relabel) -> None:
        """Only a flip is possible (one line): negate the coordinate in and out (the bound is odd)."""
        self.project_in.weight[position] *= -1
        self.project_in.bias[position] *= -1
        self.project_out.weight[:, position] *= -1

    def _rounded(self, x: torch.Tensor) -> torch.Tensor:
        return scalar.quantize(self.project_in(x), self._levels, bound=True)

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return scalar.to_codes(self._rounded(x), self._levels)

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return self.project_out(scalar.from_codes(codes, self._levels))

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """Differentiable end to end (straight-through rounding); FSQ has no codebook loss."""
        rounded = self._rounded(z)
        return QuantizeOutput(z_q=self.project_out(rounded), codes=scalar.to_codes(rounded.detach(), self._levels),
                              loss=z.new_zeros(()))

    def init_from_sample(self, sample: torch.Tensor) -> None:
        """PCA start: coordinate ``i`` reads principal component ``i`` in units of the step of a
        uniform quantizer fitted to it, and ``project_out`` maps the levels back onto the same
        axes around the mean (coordinates beyond the data's rank keep their random start)."""
        mean = sample.mean(0)
        axes = principal_axes(sample, len(self.levels))
        proj = (sample - mean) @ axes.T
        steps = torch.stack([uniform_step(proj[:, i], self.levels[i]) for i in range(len(axes))])
        m = len(axes)
        self.project_in.weight[:m] = axes / steps[:, None]
        self.project_in.bias[:m] = -(axes @ mean) / steps
        self.project_out.weight[:, :m] = (axes * steps[:, None]).T
        self.project_out.bias.copy_(mean)
