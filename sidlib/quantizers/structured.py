"""Structured (line) quantizer and its ternary special case, DPCA (the SIDE paper's definitions).

Per level and product group, ``K`` lines, each a direction ``u_k`` and an offset ``b_k``; its ``L``
codewords are ``s_l * u_k + b_k`` for the centred scalar levels ``s_l`` (:mod:`.scalar`). A residual
``r`` is encoded by its coordinate ``t = <r - b_k, u_k> / ||u_k||^2`` along a line, rounded to the
nearest level; code ``k * L + l``. Levels are stacked on the residual; ``groups`` split the dimension
into contiguous sub-vectors (``np.array_split`` sizes) encoded in parallel, each with its own lines.

The line chosen is the one whose *nearest codeword* is closest: an exact nearest-codeword search
among the ``K L`` codewords from just two projections per line, ``<r, u_k>`` and ``<r, b_k>`` (the
distance to the infinite line would ignore that ``t`` is clipped to the outer levels). With ``K = 1``
(DPCA) no choice is made. The projections of every level's residual come from one matmul of the
input with all lines plus a Gram-matrix correction (:meth:`StructuredQuantizer._greedy`), so
encoding reads the input once: DPCA costs ``levels x dim`` multiply-adds per vector.

Code layout is level-major (see :mod:`.residual`): ``q.prefix(m)`` decodes the first ``m`` levels
of every group.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sidlib.errors import InvalidInputError
from sidlib.quantizers import scalar
from sidlib.quantizers.base import QuantizeOutput
from sidlib.quantizers.labels import LabelSymmetry, Relabel, renumber_lines
from sidlib.quantizers.residual import ResidualQuantizer, prefix_loss
from sidlib.quantizers.warm_start import lloyd, principal_axes, uniform_step


class StructuredQuantizer(ResidualQuantizer):
    """``levels`` x ``groups`` positions, each of cardinality ``lines * points``.

    Default for 24 bits: 3 levels x (32 lines x 8 points) = 256 codes per position, one group;
    ``levels`` defaults to ``round(bits / (groups * log2(lines * points)))``.
    ``beta`` weights the commitment term. ``kwargs``: ``seed``, ``device``, ``encode_batch_size``
    and the :class:`~sidlib.quantizers.training.TrainSettings` fields.
    """

    name = "structured"

    def __init__(
        self, dim: int, bits: float = 24, *, lines: int = 32, points: int = 8, levels: int | None = None,
        groups: int = 1, beta: float = 0.25, **kwargs: Any,
    ):
        super().__init__(dim, **kwargs)
        if lines < 1 or points < 2 or not 1 <= groups <= dim:
            raise InvalidInputError(f"need lines >= 1, points >= 2, 1 <= groups <= dim; got {lines}, {points}, {groups}")
        if levels is None:
            levels = round(bits / (groups * math.log2(lines * points)))
        if levels < 1:
            raise InvalidInputError(f"{bits} bits leave no level for {groups} groups of {lines}x{points} codes")
        self.lines, self.points, self.groups, self.levels = int(lines), int(points), int(groups), int(levels)
        self.codes_per_level = self.groups
        self.beta = float(beta)
        self.u = nn.Parameter(torch.zeros(self.levels, self.lines, dim))
        self.b = nn.Parameter(torch.zeros(self.levels, self.lines, dim))
        bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(dim), self.groups)])
        self._group_slices = [slice(int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:])]
        mask = torch.zeros(self.groups, dim)
        for g, cols in enumerate(self._group_slices):
            mask[g, cols] = 1
        self.register_buffer("_group_mask", mask, persistent=False)

    @property
    def cardinalities(self) -> list[int]:
        return [self.lines * self.points] * (self.levels * self.groups)

    def label_symmetries(self) -> list[LabelSymmetry]:
        """Per level and group: the lines are unordered, and each line's points may be reversed by
        negating its direction (codeword ``s u + b`` = ``(-s)(-u) + b``)."""
        symmetry = LabelSymmetry(self.lines, self.points, permute_lines=self.lines > 1, flip_points=True)
        return [symmetry] * (self.levels * self.groups)

    def _relabel_position(self, position: int, relabel: Relabel) -> None:
        """A group's lines only touch its own columns, so each (level, group) relabels on its own."""
        level, cols = position // self.groups, self._group_slices[position % self.groups]
        sign = torch.where(torch.as_tensor(relabel.flips, device=self.u.device), -1.0, 1.0)[:, None]
        self.u[level, :, cols] = renumber_lines(self.u[level, :, cols] * sign, relabel)
        self.b[level, :, cols] = renumber_lines(self.b[level, :, cols], relabel)

    # ------------------------------------------------------------------ lines
    def _rows(self, level: int) -> torch.Tensor:
        """Level ``level``'s lines as ``[2 K G, dim]`` rows: directions then offsets, row ``k * G + g``
        of each half being line ``k`` of group ``g`` (zero outside the group's columns), so one
        matmul projects a residual onto every direction and offset of every group."""
        u = (self.u[level][:, None] * self._group_mask).flatten(0, 1)
        b = (self.b[level][:, None] * self._group_mask).flatten(0, 1)
        return torch.cat([u, b])

    def _assign(self, rows: torch.Tensor, proj: torch.Tensor, straight_through: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[n, G]`` of the nearest codeword of one level, and its coefficients ``[n, 2 K G]``
        (codeword = ``coefficients @ rows``), from the projections ``proj = residual @ rows.T``.

        With ``straight_through`` the coefficients carry the gradient of the rounded coordinate ``t``
        (identity through the rounding) back to ``proj``; otherwise they are plain levels.
        """
        n, k, g = proj.shape[0], self.lines, self.groups
        u, b = rows[: k * g], rows[k * g:]
        uu = u.pow(2).sum(1).clamp_min(1e-12)
        along = proj[:, : k * g] - (u * b).sum(1)  # <r - b, u>
        t = along / uu
        line = None
        if k > 1:
            with torch.no_grad():
                s = scalar.nearest_level(t, self.points)
                # ||r - b - s u||^2 minus ||r||^2, the same for every line of a group
                score = b.pow(2).sum(1) - 2 * proj[:, k * g:] + s * (s * uu - 2 * along)
                line = score.view(n, k, g).argmin(1)
            t = t.view(n, k, g).gather(1, line[:, None]).squeeze(1)
        s = scalar.quantize(t, self.points) if straight_through else scalar.nearest_level(t, self.points)
        return self._codes(line, s.detach()), self._coefficients(line, s)

    def _coefficients(self, line: torch.Tensor | None, s: torch.Tensor) -> torch.Tensor:
        """``[n, 2 K G]`` weights of the rows that make the codewords ``s * u_line + b_line``."""
        if line is None:
            return torch.cat([s, torch.ones_like(s)], 1)
        onehot = F.one_hot(line, self.lines).transpose(1, 2).flatten(1).to(s.dtype)  # [n, K * G]
        return torch.cat([onehot * s.repeat(1, self.lines), onehot], 1)

    def _codes(self, line: torch.Tensor | None, s: torch.Tensor) -> torch.Tensor:
        codes = scalar.to_codes(s, self.points)
        return codes if line is None else line * self.points + codes

    def _greedy(self, x: torch.Tensor, rows: list[torch.Tensor], straight_through: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Greedy residual encoding without ever forming a residual: the projections of the level-
        ``l`` residual are ``x @ rows_l.T`` minus earlier codewords' projections, and those are the
        earlier coefficients times the Gram matrix of the rows. So ``x`` is read once (one matmul
        for all levels) and the rest works on ``[n, 2 K G]`` tensors; this is what makes DPCA encode
        cost ``levels x dim`` per vector. Returns the codes and each level's coefficients."""
        stacked = torch.cat(rows)
        width = stacked.shape[0] // self.levels
        proj, gram = x @ stacked.T, stacked @ stacked.T
        codes, coefs = [], []
        for level in range(self.levels):
            cols = slice(level * width, (level + 1) * width)
            level_proj = proj[:, cols] - torch.cat(coefs, 1) @ gram[: level * width, cols] if coefs else proj[:, cols]
            level_codes, level_coefs = self._assign(rows[level], level_proj, straight_through)
            codes.append(level_codes)
            coefs.append(level_coefs)
        return torch.cat(codes, 1), coefs

    # ---------------------------------------------------------- encode/decode
    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self._greedy(x, [self._rows(level) for level in range(self.levels)])[0]

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        n_levels = codes.shape[1] // self.groups
        level_codes = codes.reshape(len(codes), n_levels, self.groups)
        line = level_codes // self.points if self.lines > 1 else None
        s = scalar.from_codes(level_codes % self.points, self.points)
        coefs = [self._coefficients(None if line is None else line[:, level], s[:, level]) for level in range(n_levels)]
        return torch.cat(coefs, 1) @ torch.cat([self._rows(level) for level in range(n_levels)])

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """Greedy residual pass with straight-through scalar rounding of each coordinate ``t``.

        ``z_q`` has the value of the codeword sum and two gradient paths kept apart: to the lines,
        the exact gradient with the rounded levels as constants (what the codewords really do);
        to ``z``, the straight-through gradient of the rounding through every projection (the lines
        held fixed), so an encoder learns along the directions the codes can express.
        """
        rows = [self._rows(level) for level in range(self.levels)]
        fixed = [r.detach() for r in rows]
        codes, coefs = self._greedy(z, fixed, straight_through=True)
        codewords = torch.stack([c.detach() @ r for c, r in zip(coefs, rows)], 1)
        through_z = torch.cat(coefs, 1) @ torch.cat(fixed)
        return QuantizeOutput(z_q=codewords.sum(1) + through_z - through_z.detach(), codes=codes,
                              loss=prefix_loss(z, codewords, self.beta))

    # ---------------------------------------------------------------- init
    def init_from_sample(self, sample: torch.Tensor) -> None:
        """Greedy residual PCA: per level and group, k-means of the residual into ``K`` clusters
        (the mean when ``K = 1``); line ``k`` goes through its cluster's mean along the cluster's
        first principal axis, scaled so the ``L`` levels fit the projections (:func:`uniform_step`)."""
        residual = sample
        for level in range(self.levels):
            for cols in self._group_slices:
                x = residual[:, cols]
                centers, labels = lloyd(x, self.lines, self.generator)
                for k in range(self.lines):
                    members = x[labels == k]
                    members = members if len(members) >= 2 else x
                    axis = principal_axes(members, 1)[0]
                    self.u[level, k, cols] = axis * uniform_step((members - centers[k]) @ axis, self.points)
                    self.b[level, k, cols] = centers[k]
            rows = self._rows(level)
            residual = residual - self._assign(rows, residual @ rows.T, straight_through=False)[1] @ rows


class DPCA(StructuredQuantizer):
    """Discrete PCA: one line per level and group (``K = 1``) with ternary points (``L = 3``).

    From ``bits``: ``floor(bits / log2 3)`` trits (24 bits -> 15, i.e. 23.77 bits), spread over
    ``groups`` (default 3) as ``levels = trits // groups`` (5); ``levels`` overrides.
    """

    name = "dpca"

    def __init__(self, dim: int, bits: float = 24, *, groups: int = 3, levels: int | None = None, **kwargs: Any):
        if levels is None:
            levels = scalar.ternary_digits(bits) // groups
        super().__init__(dim, bits, lines=1, points=3, levels=levels, groups=groups, **kwargs)
