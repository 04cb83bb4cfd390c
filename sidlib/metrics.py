"""Quality metrics for Semantic IDs: reconstruction (per signal for a fused SID), code usage,
collisions, neighbour recall, NE.

All exact and pure numpy, so results do not depend on an ANN index or on which optional packages are
installed. Inputs are validated at the boundary (:mod:`sidlib.validation`); statistics are computed
in float64 so that equal distances between discrete codes compare equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import Quantizer
from sidlib.sid import centre_codes
from sidlib.validation import as_code_matrix, as_float_matrix

if TYPE_CHECKING:
    from sidlib.quantizers.fusion import FusionLayout

#: Norms below this count as zero: such a row has cosine 0 to everything (loss 1), not NaN.
_EPS_NORM = 1e-12
#: Bytes of one query-by-item distance block in :func:`recall_at_k` (bounds memory for large catalogues).
_BLOCK_BYTES = 1 << 27

Metric = Literal["euclidean", "cosine"]


# ------------------------------------------------------------------ reconstruction
def _paired(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    x = as_float_matrix(X, name="X").astype(np.float64)
    x_hat = as_float_matrix(X_hat, x.shape[1], name="X_hat").astype(np.float64)
    if x_hat.shape[0] != x.shape[0]:
        raise InvalidInputError(f"X has {x.shape[0]} rows but X_hat has {x_hat.shape[0]}")
    return x, x_hat


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS_NORM)


def row_cosine_loss(X: Any, X_hat: Any) -> np.ndarray:
    """``1 - cos(x, x_hat)`` of each row, float ``[n]``."""
    x, x_hat = _paired(X, X_hat)
    return 1.0 - np.sum(_unit_rows(x) * _unit_rows(x_hat), axis=1)


def cosine_loss(X: Any, X_hat: Any) -> float:
    """Mean of ``1 - cos(x, x_hat)`` over rows (0 = same directions, 1 = orthogonal on average)."""
    return float(np.mean(row_cosine_loss(X, X_hat)))


def mse(X: Any, X_hat: Any) -> float:
    """Mean squared error per element (``torch.nn.functional.mse_loss`` convention, not per row)."""
    x, x_hat = _paired(X, X_hat)
    return float(np.mean((x - x_hat) ** 2))


# ------------------------------------------------------------------- fused signals
def signal_report(layout: "FusionLayout", X: Any, X_hat: Any, threshold: float = 0.5) -> dict[str, float]:
    """Per-signal quality of reconstructions ``X_hat`` (``decode`` output) of fused rows ``X``,
    each over the rows that have the signal: ``<name>_cosine_loss`` for embeddings,
    ``<name>_micro_f1`` / ``<name>_exact_match`` for multilabel signals (``threshold`` on the
    probabilities), ``<name>_accuracy`` for categorical ones (argmax). The fused vector as a whole has
    no meaningful single cosine loss, so this is how a fused SID is judged."""
    x, x_hat, present = layout.split(X), layout.split(X_hat), layout.presence(X)
    report: dict[str, float] = {}
    for s in layout.signals:
        rows = present[s.name]
        if not rows.any():
            continue
        truth, pred = x[s.name][rows], x_hat[s.name][rows]
        if s.kind == "embedding":
            report[f"{s.name}_cosine_loss"] = cosine_loss(truth, pred)
        elif s.kind == "multilabel":
            report.update({f"{s.name}_{k}": v for k, v in multilabel_scores(truth, pred, threshold).items()})
        else:
            report[f"{s.name}_accuracy"] = float(np.mean(truth.argmax(1) == pred.argmax(1)))
    return report


def multilabel_scores(truth: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Micro-F1 over all (row, label) pairs and exact-match accuracy of ``probs >= threshold``
    against 0/1 ``truth``."""
    t, p = np.asarray(truth) >= 0.5, np.asarray(probs) >= threshold
    tp = np.sum(t & p)
    denom = np.sum(t) + np.sum(p)
    return {"micro_f1": float(2 * tp / denom) if denom else 1.0, "exact_match": float(np.mean((t == p).all(1)))}



# -------------------------------------------------------------------- code usage
def _code_counts(codes: Any, cardinalities: Sequence[int]) -> list[np.ndarray]:
    """How many items use each code, per position (one ``bincount`` over offset codes)."""
    cards = [int(c) for c in cardinalities]
    arr = as_code_matrix(codes, cards)
    offsets = np.concatenate([[0], np.cumsum(cards)])
    counts = np.bincount((arr + offsets[:-1]).ravel(), minlength=int(offsets[-1]))
    return np.split(counts, offsets[1:-1])


def utilization(codes: Any, cardinalities: Sequence[int]) -> np.ndarray:
    """Fraction of each position's codes used by at least one item, float64 ``[n_positions]``."""
    return np.array([np.count_nonzero(c) / c.size for c in _code_counts(codes, cardinalities)])


def perplexity(codes: Any, cardinalities: Sequence[int]) -> np.ndarray:
    """``exp(entropy)`` of each position's code distribution, float64 ``[n_positions]``: the number
    of equally used codes that would carry the same information (``L_k`` at best, 1 at worst)."""
    out = []
    for counts in _code_counts(codes, cardinalities):
        p = counts[counts > 0] / counts.sum()
        out.append(np.exp(-np.sum(p * np.log(p))))
    return np.array(out)


def _group_sizes(codes: Any) -> np.ndarray:
    """Number of items sharing each distinct code vector."""
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(
            f"codes must be a non-empty 2-D integer array [n, n_codes], got shape {arr.shape} dtype {arr.dtype}"
        )
    return np.unique(arr, axis=0, return_counts=True)[1]


def unique_sid_rate(codes: Any) -> float:
    """Distinct code vectors / items: 1.0 when every item has its own SID, ``1/n`` when all collide."""
    sizes = _group_sizes(codes)
    return sizes.size / sizes.sum()


def gini(sizes: Any) -> float:
    """Gini coefficient of non-negative sizes (e.g. items per SID): 0 when all are equal (every item its
    own SID), towards 1 when a few hold nearly everything."""
    ordered = np.sort(np.asarray(sizes, dtype=np.float64))
    n = ordered.size
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * ordered) / (n * ordered.sum()))


def largest_collision_bucket(codes: Any) -> int:
    """Most items sharing one code vector (1 = no collisions): the worst case a ranker cannot tell apart."""
    return int(_group_sizes(codes).max())


# ---------------------------------------------------------------- neighbour recall
def _topk(dist: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest entries of each row, ordered by (distance, column index).

    Ties are common between discrete codes, so they are broken by the smaller item index, making
    the result deterministic. Cost O(rows * cols) plus O(rows * k log k): partition to find the
    k-th distance, take everything strictly closer, then fill up with the lowest-index ties.
    """
    kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]
    closer = dist < kth
    tied = dist == kth
    room = k - closer.sum(axis=1, keepdims=True)
    chosen = closer | (tied & (np.cumsum(tied, axis=1) <= room))
    idx = np.nonzero(chosen)[1].reshape(dist.shape[0], k)
    order = np.argsort(np.take_along_axis(dist, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def _distances(queries: np.ndarray, items: np.ndarray, metric: Metric) -> np.ndarray:
    """Smaller = closer. Cosine: negative cosine (inputs already unit rows); Euclidean: squared L2."""
    if metric == "cosine":
        return -(queries @ items.T)
    return np.sum(queries**2, axis=1)[:, None] - 2.0 * (queries @ items.T) + np.sum(items**2, axis=1)[None, :]


def nearest_neighbours(points: np.ndarray, query_idx: np.ndarray, k: int, metric: Metric) -> np.ndarray:
    """Top-``k`` neighbours of ``points[query_idx]`` among ``points``, the query itself excluded."""
    if metric == "cosine":
        points = _unit_rows(points)
    block = max(1, _BLOCK_BYTES // (points.itemsize * points.shape[0]))
    parts = []
    for start in range(0, query_idx.size, block):
        q = query_idx[start:start + block]
        dist = _distances(points[q], points, metric)
        dist[np.arange(q.size), q] = np.inf
        parts.append(_topk(dist, k))
    return np.concatenate(parts)


def recall_at_k(
    X_raw: Any,
    Y: Any,
    k_values: Sequence[int] = (20, 50, 100),
    n_queries: int = 1000,
    ref_k: int = 20,
    seed: int = 0,
    metric: Metric = "euclidean",
) -> dict[int, float]:
    """How well neighbourhoods survive quantization (SIDE paper, Table 2 protocol).

    For ``n_queries`` items drawn without replacement (all items if there are fewer), the truth is
    the ``ref_k`` nearest items by cosine on ``X_raw``; the candidates are the ``k`` nearest on ``Y``
    by ``metric`` (``"euclidean"`` for SIDE codes, ``"cosine"`` for reconstructions). The query
    itself is excluded from both lists. Returns ``{k: mean |truth & candidates@k| / ref_k}``.

    Exact brute force (no ANN index). Equal distances are broken by the smaller item index, so the
    result is deterministic for a given ``seed``; with coarse codes many items tie, and this rule
    then decides which of them count as candidates.
    """
    if metric not in ("euclidean", "cosine"):
        raise InvalidInputError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    x = as_float_matrix(X_raw, name="X_raw")
    y = as_float_matrix(Y, name="Y").astype(np.float64)  # float64: SIDE code arithmetic is exact, so ties stay ties
    n = x.shape[0]
    if y.shape[0] != n:
        raise InvalidInputError(f"X_raw has {n} rows but Y has {y.shape[0]}")
    ks = sorted({int(k) for k in k_values})
    for what, values in (("k_values", ks), ("ref_k", [ref_k])):
        if not values or values[0] < 1 or values[-1] > n - 1:
            raise InvalidInputError(f"{what} must be in [1, n - 1] = [1, {n - 1}], got {values}")
    if n_queries < 1:
        raise InvalidInputError(f"n_queries must be >= 1, got {n_queries}")
    queries = np.sort(np.random.default_rng(seed).choice(n, size=min(n_queries, n), replace=False))
    truth = nearest_neighbours(x, queries, ref_k, "cosine")
    candidates = nearest_neighbours(y, queries, ks[-1], metric)
    hit = (candidates[:, :, None] == truth[:, None, :]).any(axis=2)
    recall = np.cumsum(hit, axis=1).mean(axis=0) / ref_k
    return {k: float(recall[k - 1]) for k in ks}


# ----------------------------------------------------------------------- ranking
def normalized_entropy(labels: Any, probs: Any, eps: float = 1e-7) -> float:
    """Normalised entropy: mean log loss of ``probs`` divided by that of predicting the base rate
    ``p = mean(labels)`` for everyone. Below 1 means better than knowing only the average CTR.

    ``probs`` are clipped to ``[eps, 1 - eps]`` so one confident miss costs a large, finite loss.
    Labels must be 0/1; a base rate of 0 or 1 has zero entropy and makes NE undefined (error).
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise InvalidInputError(f"labels and probs must be 1-D of equal length, got {y.shape} and {p.shape}")
    if y.size == 0:
        raise InvalidInputError("labels is empty (0 rows)")
    if not np.all((y == 0) | (y == 1)):
        raise InvalidInputError("labels must be 0 or 1")
    if not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
        raise InvalidInputError("probs must be finite probabilities in [0, 1]")
    base = y.mean()
    if base in (0.0, 1.0):
        raise InvalidInputError(f"base rate is {base:g}: NE is undefined when all labels are equal")
    p = np.clip(p, eps, 1 - eps)
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
    base_entropy = -(base * np.log(base) + (1 - base) * np.log1p(-base))
    return float(log_loss / base_entropy)


# ------------------------------------------------------------------------ report
def reconstruction_report(
    q: Quantizer,
    X: Any,
    *,
    k_values: Sequence[int] = (20, 50, 100),
    n_queries: int = 1000,
    ref_k: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """All SID quality figures of a fitted quantizer on held-out rows ``X``, flat for logging.

    Recall is reported twice: for SIDE codes (Euclidean, what a table-free ranker sees) and for the
    decoded reconstructions (cosine). ``k_values`` larger than ``len(X) - 1`` are skipped.
    """
    codes = q.encode(X)
    x_hat = q.decode(codes)
    cards = q.cardinalities
    usage, perp = utilization(codes, cards), perplexity(codes, cards)
    report: dict[str, float] = {
        "n_items": float(codes.shape[0]),
        "bits": q.bits,
        "cosine_loss": cosine_loss(X, x_hat),
        "mse": mse(X, x_hat),
        "utilization_min": float(usage.min()),
        "utilization_mean": float(usage.mean()),
        "perplexity_min": float(perp.min()),
        "perplexity_mean": float(perp.mean()),
        "unique_sid_rate": unique_sid_rate(codes),
        "largest_collision_bucket": float(largest_collision_bucket(codes)),
    }
    ks = [k for k in k_values if k <= codes.shape[0] - 1]
    if ks:
        side = centre_codes(codes, cards)
        for label, y, metric in (("side", side, "euclidean"), ("recon", x_hat, "cosine")):
            recall = recall_at_k(X, y, ks, n_queries=n_queries, ref_k=ref_k, seed=seed, metric=metric)
            report.update({f"{label}_recall@{k}": value for k, value in recall.items()})
    return report


__all__ = [
    "cosine_loss",
    "gini",
    "largest_collision_bucket",
    "mse",
    "normalized_entropy",
    "perplexity",
    "reconstruction_report",
    "recall_at_k",
    "row_cosine_loss",
    "unique_sid_rate",
    "utilization",
]
