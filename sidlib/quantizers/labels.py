"""What a quantizer's code labels may become without changing what the codes mean.

A code position's code is ``line * points + point``. Its :class:`LabelSymmetry` says whether the
lines may be renumbered (clusters, codebook rows and structured lines are unordered) and whether each
line's points may be reversed (an ordinal scale read along a direction that may be negated, as DPCA,
FSQ and structured points are; SIDE relies on that order, so it is never permuted). A
:class:`Relabel` is one such renumbering; :meth:`Quantizer.relabel` applies it to the parameters,
and :mod:`sidlib.alignment` chooses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sidlib.errors import InvalidInputError


@dataclass(frozen=True)
class LabelSymmetry:
    """The relabellings of one code position that keep its meaning (module docstring)."""

    lines: int
    points: int = 1
    permute_lines: bool = False
    flip_points: bool = False

    @property
    def cardinality(self) -> int:
        return self.lines * self.points

    @classmethod
    def permutation(cls, cardinality: int) -> "LabelSymmetry":
        """Unordered codes: any permutation (k-means and residual codebooks)."""
        return cls(lines=int(cardinality), permute_lines=True)

    @classmethod
    def ordinal(cls, levels: int) -> "LabelSymmetry":
        """An ordinal scale along one direction: identity or reversal (DPCA, FSQ)."""
        return cls(lines=1, points=int(levels), flip_points=True)

    @classmethod
    def fixed(cls, cardinality: int) -> "LabelSymmetry":
        """Codes that may not move."""
        return cls(lines=1, points=int(cardinality))

    def check(self, relabel: "Relabel") -> None:
        """Raise :class:`InvalidInputError` unless ``relabel`` is one of this position's relabellings."""
        lines, flips = np.asarray(relabel.line_map), np.asarray(relabel.flips)
        if lines.shape != (self.lines,) or flips.shape != (self.lines,):
            raise InvalidInputError(f"a relabelling of {self.lines} lines has {lines.shape} lines and {flips.shape} flips")
        if not np.array_equal(np.sort(lines), np.arange(self.lines)):
            raise InvalidInputError(f"line map {lines.tolist()[:8]}... is not a permutation of {self.lines} lines")
        if not self.permute_lines and not np.array_equal(lines, np.arange(self.lines)):
            raise InvalidInputError("these codes' lines are ordered: they cannot be permuted")
        if not self.flip_points and flips.any():
            raise InvalidInputError("these codes have no direction to flip")


@dataclass(frozen=True)
class Relabel:
    """One position's relabelling: old line ``k`` becomes line ``line_map[k]``, its points reversed
    where ``flips[k]``."""

    line_map: np.ndarray
    flips: np.ndarray

    @classmethod
    def identity(cls, symmetry: LabelSymmetry) -> "Relabel":
        return cls(np.arange(symmetry.lines), np.zeros(symmetry.lines, dtype=bool))

    def code_map(self, symmetry: LabelSymmetry) -> np.ndarray:
        """``new_code = code_map[old_code]`` over the position's codes."""
        line, point = np.divmod(np.arange(symmetry.cardinality), symmetry.points)
        flipped = np.where(self.flips[line], symmetry.points - 1 - point, point)
        return np.asarray(self.line_map)[line] * symmetry.points + flipped

    @property
    def source_lines(self) -> np.ndarray:
        """For each new line, the old line it was (the inverse of ``line_map``)."""
        return np.argsort(np.asarray(self.line_map))

    @property
    def is_identity(self) -> bool:
        return bool((np.asarray(self.line_map) == np.arange(len(self.line_map))).all() and not np.any(self.flips))


def renumber_lines(tensor: torch.Tensor, relabel: Relabel) -> torch.Tensor:
    """``tensor`` (one entry per line along its first axis) with each old line's entry moved to its
    new line number."""
    return tensor[torch.as_tensor(relabel.source_lines, device=tensor.device)]
