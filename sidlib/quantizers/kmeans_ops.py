"""Vectorised k-means building blocks shared by ``kmeans``, ``rq_kmeans`` and ``rq_gmm``: distances,
seeding, assignment statistics, the Lloyd M-step with its dead-cluster remedies, and beam search.

Everything here works on float32 torch tensors of one device and never loops over rows in Python:
distances use the matmul form ``||x||^2 - 2 x c^T + ||c||^2`` (one GEMM instead of an
``[n, k, dim]`` difference tensor; residual beams add codeword inner-product lookups, see
:class:`BeamTables`) and are computed in row blocks of at most
:data:`MAX_BLOCK_ELEMENTS` entries, so memory stays bounded whatever ``n`` and ``k`` are.
Randomness comes from a caller-owned ``numpy.random.Generator``: the draws are then identical on CPU
and GPU and reproducible from the quantizer's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

#: Largest number of entries of one temporary block (64 MiB of float32). Bounds the ``[rows, k]``
#: distance blocks and float64 accumulation blocks (beam expansions use smaller blocks, see
#: :func:`beam_paths`).
MAX_BLOCK_ELEMENTS = 1 << 24
#: Default share of an average cluster's rows below which a k-means cluster counts as dead (see
#: :func:`lloyd_update`).
MIN_CLUSTER_SHARE = 0.25


def row_blocks(n: int, width: int) -> Iterator[slice]:
    """Row slices covering ``range(n)`` such that ``rows * width <= MAX_BLOCK_ELEMENTS`` (at least 1 row)."""
    step = max(1, MAX_BLOCK_ELEMENTS // max(1, width))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """``||x_i||^2`` along the last axis (``vector_norm`` reduces without an ``x * x`` temporary)."""
    return torch.linalg.vector_norm(x, dim=-1).square()


def nearest(x: torch.Tensor, centers: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances and ids of the ``k`` nearest centres of each row, nearest first.

    Matmul form, in row blocks: the ranking only needs ``||c||^2 - 2 x c^T`` (one ``addmm``); the
    row constant ``||x||^2`` is added to the ``k`` selected values only, which are then clamped at 0
    (the expansion can round slightly below 0 for a row sitting on a centre). ``k == 1`` uses
    ``min`` (ties go to the lowest id), so plain assignment and column 0 of a top-k query agree on
    every row without exact ties.
    """
    n = x.shape[0]
    centers_sq = squared_norms(centers).unsqueeze(0)
    dist = x.new_empty((n, k))
    ids = torch.empty((n, k), dtype=torch.int64, device=x.device)
    for rows in row_blocks(n, centers.shape[0]):
        partial = torch.addmm(centers_sq, x[rows], centers.T, alpha=-2.0)
        if k == 1:
            dist[rows], ids[rows] = partial.min(dim=1, keepdim=True)
        else:
            dist[rows], ids[rows] = partial.topk(k, dim=1, largest=False, sorted=True)
    dist += squared_norms(x).unsqueeze(1)
    return dist.clamp_min_(0.0), ids


def exact_squared_distance(x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """``||x_i - point||^2`` without the matmul expansion: exactly 0 for copies of ``point``, which
    k-means++ and the re-seeding rely on to never pick a duplicate of an existing centre."""
    return torch.cdist(x, point.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist")[:, 0].square()


def kmeans_plus_plus(x: torch.Tensor, k: int, rng: np.random.Generator, local_trials: int = 1) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is a row drawn with
    probability proportional to its squared distance to the closest centre chosen so far.

    With ``local_trials > 1`` it is *greedy* k-means++ (the variant scikit-learn uses, with
    ``2 + log(k)`` trials): each step draws that many candidates and keeps the one that lowers the
    total squared distance most. Plain D^2 sampling favours isolated rows (they carry the largest
    distances), which in high dimension become singleton clusters Lloyd can never move; a candidate
    amid many rows lowers the total far more than an outlier, so greedy seeding rarely picks one.

    D^2 sampling never picks a row already covered by a centre, so duplicated rows do not produce
    duplicate centres while enough distinct rows remain; once every row coincides with a centre
    (fewer distinct rows than ``k``) the draw falls back to uniform. Cost ``O(n k dim)``: one pass
    over ``x`` per step (the exact distances to the new centre, or, greedy, the GEMM scoring the
    candidates, whose winner's distances are then recomputed exactly where they are close to 0);
    ``k`` sequential steps.
    """
    n = x.shape[0]
    trials = max(1, int(local_trials))
    uniforms = torch.as_tensor(rng.random((k, trials)), dtype=torch.float64, device=x.device)
    fallback = torch.as_tensor(rng.integers(0, n, size=k), dtype=torch.int64, device=x.device)
    centers = x.new_empty((k, x.shape[1]))
    centers[0] = x[fallback[0]]
    closest = exact_squared_distance(x, centers[0])
    x_sq = squared_norms(x) if trials > 1 else None
    for j in range(1, k):
        cumulative = torch.cumsum(closest.double(), 0)
        drawn = torch.searchsorted(cumulative, uniforms[j] * cumulative[-1], right=True).clamp_max_(n - 1)
        if cumulative[-1] <= 0:  # every row sits on a centre: uniform fallback, distances stay 0
            centers[j] = x[fallback[j]]
        elif trials == 1:
            centers[j] = x[drawn[0]]
            torch.minimum(closest, exact_squared_distance(x, centers[j]), out=closest)
        else:  # score the candidates in matmul form: one [trials, n] GEMM
            scores = torch.addmm(x_sq.unsqueeze(0), x[drawn], x.T, alpha=-2.0).add_(x_sq[drawn].unsqueeze(1))
            scores.clamp_min_(0.0)
            best = torch.minimum(scores, closest.unsqueeze(0)).double().sum(1).argmin()
            centers[j] = x[drawn[best]]
            distance = scores[best]
            # exact distances where the expansion may hide a copy of the centre (rounding ~1e-7 relative)
            near = torch.nonzero(distance <= 1e-5 * (x_sq + x_sq[drawn[best]])).flatten()
            distance[near] = squared_norms(x[near] - centers[j])
            torch.minimum(closest, distance, out=closest)
    return centers


def cluster_sums(labels: torch.Tensor, values: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster row counts ``[k]`` and value sums ``[k, dim]``, accumulated in float64 so that sums
    over batches and partitions agree to far below float32 resolution whatever their order.

    Uses ``index_put_(accumulate=True)``: serial and deterministic on CPU, and there much faster than
    ``index_add_``, whose threads contend on shared rows (0.2 ms vs 50 ms for 3000 x 32 on a busy
    2-core host). On CUDA it accumulates with atomics (unless ``torch.use_deterministic_algorithms``),
    so the float64 sums may differ in their last bits between runs: far below float32 resolution.
    """
    counts = torch.bincount(labels, minlength=k).double()
    sums = torch.zeros((k, values.shape[1]), dtype=torch.float64, device=values.device)
    for rows in row_blocks(values.shape[0], values.shape[1]):
        sums.index_put_((labels[rows],), values[rows].double(), accumulate=True)
    return counts.cpu().numpy(), sums.cpu().numpy()


def path_cluster_sums(x: torch.Tensor, codebooks: torch.Tensor, paths: torch.Tensor, labels: torch.Tensor,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cluster_sums` of the path residuals ``path_residuals(x, codebooks, paths)`` under
    ``labels`` ``[n * width]``, without forming them: the sum of a cluster's residuals is the sum of
    its rows of ``x`` (each counted once per path of the row it labels) minus, for each level
    ``j``, the codewords ``C_j`` weighted by how often the cluster co-occurs with each code of
    level ``j`` (exact integer counts times ``C_j``, in float64). Exact float64 sums of the exact
    residuals, in ``width`` scatters of ``x`` instead of one of the ``width`` times larger residual."""
    n, width, n_levels = paths.shape
    per_path = labels.view(n, width)
    counts = torch.bincount(labels, minlength=k).double()
    sums = torch.zeros((k, x.shape[1]), dtype=torch.float64, device=x.device)
    for rows in row_blocks(n, x.shape[1]):
        x64 = x[rows].double()
        for w in range(width):
            sums.index_put_((per_path[rows, w],), x64, accumulate=True)
    for level in range(n_levels):
        pairs = torch.bincount(labels * k + paths[:, :, level].reshape(-1), minlength=k * k).view(k, k)
        sums -= pairs.double() @ codebooks[level].double()
    return counts.cpu().numpy(), sums.cpu().numpy()


def assignment_statistics(counts: np.ndarray, sums: np.ndarray, dist: torch.Tensor, ids: torch.Tensor,
                          k: int) -> dict[str, np.ndarray]:
    """The additive k-means E-step statistics of one assignment: ``count`` ``[k]`` and ``sum``
    ``[k, dim]`` (as :func:`cluster_sums` gives them), ``cluster_sse`` ``[k]`` (the squared distances
    ``dist`` of the rows assigned ``ids``, per cluster, float64) and ``sse`` (their total, the objective)."""
    cluster_sse = torch.bincount(ids, weights=dist.double(), minlength=k)
    return {"count": counts, "sum": sums, "cluster_sse": cluster_sse.cpu().numpy(),
            "sse": np.asarray(cluster_sse.sum().item())}


def lloyd_update(centers: torch.Tensor, stats: Mapping[str, np.ndarray], sample: torch.Tensor,
                 min_cluster_share: float) -> bool:
    """Lloyd M-step of one codebook ``centers`` ``[k, dim]``, in place, from summed
    :func:`assignment_statistics`: each centre moves to the mean of its rows; dead ones (empty, or
    below ``min_cluster_share`` of the average cluster size) are re-seeded by bisecting big clusters
    (:func:`split_clusters`, on the rows of ``sample``), and empty ones left over (nothing to split)
    at the worst-served sample rows (:func:`reseed_empty`). Returns whether any centre was re-seeded."""
    dev = centers.device
    counts = torch.as_tensor(stats["count"], device=dev)
    sums = torch.as_tensor(stats["sum"], device=dev)
    filled = counts > 0
    centers[filled] = (sums[filled] / counts[filled].unsqueeze(1)).float()
    min_size = max(1.0, math.floor(min_cluster_share * float(counts.sum()) / centers.shape[0]))
    dead = counts < min_size
    split = split_clusters(centers, dead, counts, torch.as_tensor(stats["cluster_sse"], device=dev), sample, min_size)
    empty = ~filled
    empty[[cid for cid, _ in split]] = False
    moved = reseed_empty(centers, empty, sample) if bool(empty.any()) else []
    return bool(split or moved)


def reseed_empty(centers: torch.Tensor, empty: torch.Tensor, sample: torch.Tensor) -> list[int]:
    """Move each empty centre onto the sample row with the largest error, in place.

    The error of a row is its squared distance to the nearest live centre. Centres are re-seeded
    greedily: after a row becomes a centre, the errors of the rows near it drop, so the next empty
    centre goes to another badly served region rather than onto the same point. This splits the
    worst-quantized regions, the standard remedy that keeps every code in use. Re-seeding stops
    when the worst row already sits exactly on a centre: then every row does (up to float32
    rounding), i.e. there are fewer distinct rows than centres, and the rest stay where they are.
    Returns the ids of the centres that moved.
    """
    empty_ids = torch.nonzero(empty).flatten().tolist()
    if not empty_ids or bool(empty.all()):
        return []
    error = nearest(sample, centers[~empty])[0][:, 0]
    moved: list[int] = []
    for cid in empty_ids:
        worst = int(torch.argmax(error))
        placed = centers[~empty] if not moved else torch.cat([centers[~empty], centers[moved]])
        if float(exact_squared_distance(placed, sample[worst]).min()) <= 0.0:
            break
        centers[cid] = sample[worst]
        torch.minimum(error, exact_squared_distance(sample, sample[worst]), out=error)
        moved.append(cid)
    return moved


@dataclass(frozen=True)
class BeamTables:
    """What the matmul-form beam search needs besides the rows, computed once per set of codebooks
    (FAISS's ``use_beam_LUT``): with ``r = x - sum_j c_j`` the residual of a partial path,

    ``||r - c||^2 = ||r||^2 + (||c||^2 - 2 <x, c>) + 2 sum_j <c_j, c>``,

    so one GEMM of the rows against all codebooks (``flat``, biased by ``norms``) plus lookups in the
    codeword inner-product tables ``cross[(j, m)] = 2 C_j C_m^T`` score every expansion of every
    beam, instead of one GEMM per level on ``beam_size`` residual copies of each row.
    """

    codebooks: torch.Tensor                          # [levels, k, dim]
    flat: torch.Tensor                               # [levels * k, dim]
    norms: torch.Tensor                              # [levels * k]
    cross: dict[tuple[int, int], torch.Tensor]       # (j, m), j < m -> [k, k]

    @classmethod
    def of(cls, codebooks: torch.Tensor) -> "BeamTables":
        levels, k, dim = codebooks.shape
        flat = codebooks.reshape(levels * k, dim)
        cross = {(j, m): 2.0 * (codebooks[j] @ codebooks[m].T) for m in range(levels) for j in range(m)}
        return cls(codebooks=codebooks, flat=flat, norms=squared_norms(flat), cross=cross)


def beam_paths(x: torch.Tensor, codebooks: torch.Tensor, beam_size: int = 1) -> torch.Tensor:
    """The ``min(beam_size, k ** levels)`` best code paths of each row, best first: int64
    ``[n, width, levels]`` (``width`` is ``1`` for ``beam_size == 1``: greedy).

    Each level expands every kept path with every codeword of the level and keeps the
    ``beam_size`` expansions with the smallest squared error: one ``topk`` over the
    ``[rows, width * k]`` scores of :class:`BeamTables` (no Python loop over beams, no residual
    copies), as FAISS's ``ResidualQuantizer`` with ``max_beam_size`` and ``use_beam_LUT``. A beam
    can in principle lose the greedy path, but on average it reconstructs better. ``beam_size == 1``
    uses ``min`` (ties go to the lowest id), like :func:`nearest`.
    """
    if codebooks.shape[0] == 0:
        return torch.empty((x.shape[0], 1, 0), dtype=torch.int64, device=x.device)
    return _beam_blocks(x, codebooks, beam_size, assign_last=False)[0]


def beam_assign(x: torch.Tensor, codebooks: torch.Tensor, beam_size: int = 1
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The E-step of a residual level trained on beam residuals, without forming the residuals for
    the distances: the best paths ``[n, width, levels - 1]`` through all codebooks but the last
    (:func:`beam_paths`), and for each path the nearest codeword of the last codebook, as squared
    distances ``[n * width]`` (clamped at 0) and ids ``[n * width]`` (ties to the lowest id).

    The distances come from the same lookup tables (one GEMM of the rows against all codebooks), so
    assigning ``width`` residual copies of each row costs no GEMM on the copies."""
    return _beam_blocks(x, codebooks, beam_size, assign_last=True)


def _beam_blocks(x: torch.Tensor, codebooks: torch.Tensor, beam_size: int, assign_last: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_beam_block` over row blocks of ~2 M scores each (the ``[rows, width * k]``
    expansions stay cache-friendly); ``dist`` and ``ids`` are empty unless ``assign_last``."""
    n_levels, k, _ = codebooks.shape
    n, searched = x.shape[0], n_levels - 1 if assign_last else n_levels
    tables = BeamTables.of(codebooks)
    width = beam_width(beam_size, k, searched)
    paths = torch.empty((n, width, searched), dtype=torch.int64, device=x.device)
    dist = x.new_empty((n if assign_last else 0, width))
    ids = torch.empty((n if assign_last else 0, width), dtype=torch.int64, device=x.device)
    step = max(1, (1 << 21) // (max(width, n_levels) * k))
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        block = _beam_block(x[rows], tables, beam_size, assign_last)
        paths[rows] = block[0]
        if assign_last:
            dist[rows], ids[rows] = block[1], block[2]
    return paths, dist.reshape(-1).clamp_min_(0.0), ids.reshape(-1)


def beam_width(beam_size: int, k: int, levels: int) -> int:
    """Number of paths a beam of ``beam_size`` keeps after ``levels`` levels of ``k`` codewords."""
    return min(int(beam_size), k ** levels) if levels > 0 else 1


def path_residuals(x: torch.Tensor, codebooks: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """Residuals ``x_i - sum_l codebooks[l, paths[i, w, l]]``, flattened to ``[n * width, dim]``
    (row-major: the ``width`` paths of row 0 first)."""
    n, width, n_levels = paths.shape
    if n_levels == 0:
        return x.repeat_interleave(width, dim=0) if width > 1 else x.clone()
    residual = codebooks[0].index_select(0, paths[:, :, 0].reshape(-1))
    for level in range(1, n_levels):
        residual += codebooks[level].index_select(0, paths[:, :, level].reshape(-1))
    view = residual.view(n, width, -1)
    torch.sub(x.unsqueeze(1), view, out=view)
    return residual


def beam_search(x: torch.Tensor, codebooks: torch.Tensor, beam_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual-quantize ``x`` with ``codebooks[level]`` (``[levels, k, dim]``); returns the codes
    ``[n, levels]`` of the best path of :func:`beam_paths` and its residual ``[n, dim]``."""
    codes = beam_paths(x, codebooks, beam_size)[:, 0]
    return codes, path_residuals(x, codebooks, codes.unsqueeze(1))


def _beam_block(x: torch.Tensor, tables: BeamTables, beam_size: int, assign_last: bool
                ) -> tuple[torch.Tensor, ...]:
    """One row block of :func:`beam_paths` / :func:`beam_assign`. ``error`` ``[n, width]`` holds
    each kept path's squared residual norm, updated from the score of the expansion that extended it."""
    n_levels, k, _ = tables.codebooks.shape
    n = x.shape[0]
    base = torch.addmm(tables.norms, x, tables.flat.T, alpha=-2.0).view(n, n_levels, k)  # ||c||^2 - 2 <x, c>
    error = squared_norms(x).unsqueeze(1)
    codes = torch.empty((n, 1, 0), dtype=torch.int64, device=x.device)
    for m in range(n_levels):
        width = codes.shape[1]
        if m == 0:
            scores = (base[:, 0] + error).unsqueeze(1)                              # [n, 1, k]
        else:
            scores = tables.cross[(0, m)].index_select(0, codes[:, :, 0].reshape(-1)).view(n, width, k)
            for j in range(1, m):
                scores += tables.cross[(j, m)].index_select(0, codes[:, :, j].reshape(-1)).view(n, width, k)
            scores += base[:, m].unsqueeze(1)
            scores += error.unsqueeze(2)
        if assign_last and m == n_levels - 1:
            return (codes, *scores.min(dim=2))
        scores = scores.view(n, width * k)
        if beam_size == 1:
            error, flat = scores.min(dim=1, keepdim=True)
        else:
            error, flat = scores.topk(min(beam_size, scores.shape[1]), dim=1, largest=False, sorted=True)
        parent, code = flat // k, flat % k
        codes = torch.cat([torch.take_along_dim(codes, parent.unsqueeze(2), dim=1), code.unsqueeze(2)], dim=2)
    return (codes,)


def split_clusters(centers: torch.Tensor, dead: torch.Tensor, sizes: torch.Tensor, spread: torch.Tensor,
                   sample: torch.Tensor, min_size: float) -> list[tuple[int, int]]:
    """Re-seed each ``dead`` centre by bisecting a big, spread-out live cluster, in place; returns
    ``(dead id, id of the cluster it split)`` for each dead centre that moved.

    The clusters to split are the live ones with at least ``2 * min_size`` rows and the largest
    within-cluster squared error ``spread`` (from the E-step over all rows), largest first, each
    split once. A split is one bisecting-k-means step on the cluster's rows of ``sample``: they are
    cut through their mean across their principal axis (a few power iterations), the cluster's
    centre moves to the mean of one half and the dead centre to the mean of the other. Unlike
    moving a dead centre onto the worst-served row (:func:`reseed_empty`), which in high dimension
    is an isolated row that stays a singleton cluster, both halves hold many rows, so the new code
    is used by unseen rows too. A cluster whose sample rows all coincide cannot be split and is
    skipped; dead centres left without a cluster to split stay where they are.
    """
    dead_ids = torch.nonzero(dead).flatten().tolist()
    live = ~dead
    if not dead_ids or not bool(live.any()):
        return []
    eligible = live & (sizes >= 2 * min_size) & (spread > 0)
    order = [c for c in torch.argsort(spread, descending=True, stable=True).tolist() if bool(eligible[c])]
    if not order:
        return []
    live_ids = torch.nonzero(live).flatten()
    labels = live_ids[nearest(sample, centers[live_ids])[1][:, 0]]
    moved: list[tuple[int, int]] = []
    for cid in dead_ids:
        while order:
            target = order.pop(0)
            halves = _bisect(sample[labels == target])
            if halves is not None:
                centers[target], centers[cid] = halves
                moved.append((cid, target))
                break
        if not order:
            break
    return moved


def _bisect(rows: torch.Tensor, power_iterations: int = 20) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Means of the two halves of ``rows`` cut through their mean across their principal axis, or
    ``None`` when there are not two distinct rows. The power iteration starts from the row farthest
    from the mean (deterministic; in practice never orthogonal to the principal axis)."""
    if rows.shape[0] < 2 or not bool((rows != rows[0]).any()):
        return None
    centred = rows.double() - rows.double().mean(dim=0)
    axis = centred[squared_norms(centred).argmax()]
    for _ in range(power_iterations):
        axis = centred.T @ (centred @ axis)
        axis = axis / torch.linalg.vector_norm(axis).clamp_min(1e-300)
    upper = (centred @ axis) > 0
    if bool(upper.all()) or not bool(upper.any()):
        return None
    return rows[~upper].mean(dim=0), rows[upper].mean(dim=0)
