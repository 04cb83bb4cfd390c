"""Offline evaluation arithmetic: warm/cold slices, NE per slice, NE gain with a t-interval over
seeds, and return on investment (gain per byte of feature).

Cold items are reported apart because that is where a SID can help most: an item is *cold* for a test
impression when it never appears as a target in the train split, so its id embedding is untrained and
anything the ranker knows about it comes through shared SID/content features.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from sidlib.errors import InvalidInputError
from sidlib.metrics import normalized_entropy

SLICES = ("all", "warm", "cold")


def cold_mask(train_item_ids: Any, item_ids: Any) -> np.ndarray:
    """``True`` where ``item_ids`` never occur in ``train_item_ids``."""
    return ~np.isin(np.asarray(item_ids, dtype=np.int64), np.asarray(train_item_ids, dtype=np.int64))


def slice_masks(train_item_ids: Any, item_ids: Any) -> dict[str, np.ndarray]:
    cold = cold_mask(train_item_ids, item_ids)
    return {"all": np.ones_like(cold), "warm": ~cold, "cold": cold}


def slice_ne(labels: Any, probs: Any, masks: dict[str, np.ndarray]) -> dict[str, float | None]:
    """NE on each slice; ``None`` where it is undefined (an empty slice, or all labels equal)."""
    y, p = np.asarray(labels), np.asarray(probs)
    out: dict[str, float | None] = {}
    for name, mask in masks.items():
        ys = y[mask]
        out[name] = normalized_entropy(ys, p[mask]) if ys.size and 0 < ys.mean() < 1 else None
    return out


def ne_gain(ne_base: float, ne_variant: float) -> float:
    """Relative NE gain in percent: ``(NE_base - NE_variant) / NE_base * 100`` (positive = better)."""
    return (ne_base - ne_variant) / ne_base * 100.0


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half width)`` of the Student-t interval over seeds (half width NaN for one seed)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
    if x.size == 1:
        return float(x[0]), math.nan
    half = stats.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def roi(gain_click: float, gain_conv: float, cost_bytes: float) -> float:
    """The SIDE paper's return on investment: ``(gain_click + gain_conv) / (2 x cost)``, % per byte."""
    if cost_bytes <= 0:
        raise InvalidInputError(f"cost must be positive, got {cost_bytes}")
    return (gain_click + gain_conv) / (2.0 * cost_bytes)
