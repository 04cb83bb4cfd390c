"""Hysteresis for recurring refits: an item keeps its previous codes unless the new version's codes
reconstruct it clearly better.

After a warm-started refit the previous version's codes still mean nearly the same thing under the
new quantizer (its codebooks or weights moved a little), so re-encoding every item from scratch
changes many SIDs for a negligible gain: an item near the boundary of two codewords flips to the
other side. :func:`stable_codes` keeps the previous codes of every item whose reconstruction from
them, by the *new* quantizer, loses at most ``margin`` (relative) against its new codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from sidlib.errors import InvalidInputError
from sidlib.metrics import row_cosine_loss
from sidlib.quantizers.base import Quantizer


def stable_codes(quantizer: Quantizer, X: Any, previous: np.ndarray, margin: float,
                 new: np.ndarray | None = None) -> np.ndarray:
    """Codes ``[n, n_codes]`` for rows ``X``: ``previous[i]`` where
    ``loss(previous[i]) <= (1 + margin) * loss(new[i])`` (cosine loss of the new quantizer's decode),
    else ``new[i]`` (``quantizer.encode(X)`` when not given). A row whose previous codes are missing
    (any code ``-1``, e.g. an item new since the previous version) gets its new codes."""
    if margin < 0:
        raise InvalidInputError(f"margin must be >= 0, got {margin}")
    previous = np.asarray(previous, dtype=np.int64)
    new = quantizer.encode(X) if new is None else np.asarray(new, dtype=np.int64)
    if previous.shape != new.shape:
        raise InvalidInputError(f"previous codes have shape {previous.shape}, the quantizer's {new.shape}")
    known = (previous >= 0).all(axis=1)
    keep = np.zeros(len(new), dtype=bool)
    if known.any():
        rows = np.asarray(X)[known]
        loss_new = row_cosine_loss(rows, quantizer.decode(new[known]))
        loss_old = row_cosine_loss(rows, quantizer.decode(previous[known]))
        keep[known] = loss_old <= (1 + margin) * loss_new + 1e-12
    return np.where(keep[:, None], previous, new)
