"""FSQ-style scalar quantization, shared by :mod:`~sidlib.quantizers.fsq` and the structured quantizer.

A coordinate is rounded to one of ``L`` *centred* levels ``c - (L-1)/2`` (``c = 0..L-1``), so odd
``L`` has a level at 0 and even ``L`` is symmetric around it (``L = 8``: -3.5 .. 3.5). Code ``c`` and
centred value map one to one (:func:`to_codes` / :func:`from_codes`), which keeps the code of a
rounded value trivially invertible. ``levels`` may be an int or a tensor broadcasting against the
values (FSQ uses a different ``L`` per latent dimension).
"""

from __future__ import annotations

import math

import torch

from sidlib.errors import InvalidInputError

Levels = int | torch.Tensor


def half_width(levels: Levels) -> Levels:
    """``(L-1)/2``: the largest centred level."""
    return (levels - 1) / 2


def nearest_level(t: torch.Tensor, levels: Levels) -> torch.Tensor:
    """The centred level closest to ``t`` (values beyond the range go to the outermost level)."""
    top = torch.as_tensor(levels, dtype=t.dtype, device=t.device) - 1
    return torch.minimum(torch.round(t + top / 2).clamp_min(0), top) - top / 2


def tanh_bound(t: torch.Tensor, levels: Levels) -> torch.Tensor:
    """Squash ``t`` into ``(-L/2, L/2)`` with slope 1 at 0, the FSQ bound: every level keeps a
    rounding cell of width 1 and the gradient never vanishes outside the range (clipping would)."""
    scale = torch.as_tensor(levels, dtype=t.dtype, device=t.device) / 2 * (1 - 1e-3)
    return scale * torch.tanh(t / scale)


def quantize(t: torch.Tensor, levels: Levels, *, bound: bool = False) -> torch.Tensor:
    """Centred levels of ``t`` with a straight-through estimator: the forward value is the nearest
    level, the gradient is that of the identity (of :func:`tanh_bound` when ``bound``)."""
    if bound:
        t = tanh_bound(t, levels)
    return t + (nearest_level(t, levels) - t).detach()


def to_codes(values: torch.Tensor, levels: Levels) -> torch.Tensor:
    """Centred level values -> int64 codes ``0..L-1``."""
    return torch.round(values + half_width(levels)).long()


def from_codes(codes: torch.Tensor, levels: Levels) -> torch.Tensor:
    """int64 codes ``0..L-1`` -> centred float32 level values."""
    return codes.float() - half_width(levels)


def check_levels(levels: list[int] | tuple[int, ...], what: str = "levels") -> list[int]:
    """Validate a list of per-coordinate level counts (each at least 2)."""
    out = [int(v) for v in levels]
    if not out or min(out) < 2:
        raise InvalidInputError(f"{what} must be a non-empty list of integers >= 2, got {list(levels)}")
    return out


def ternary_digits(bits: float) -> int:
    """How many 3-level digits fit in ``bits``: ``floor(bits / log2 3)`` (24 -> 15, 23.77 bits)."""
    return int(math.floor(bits / math.log2(3) + 1e-9))
