"""SID codecs: code vectors <-> one integer id per item, n-gram ids, and SIDE float codes.

A quantizer gives each item a code vector ``c`` with ``c_k in [0, L_k)``. The ranker wants integers it
can hash into an embedding table, so a chunk of positions is packed into one id by the n-gram rule

    s = sum_k (prod_{j<k} L_j) * c_k          (= sum_k L^k c_k when all L_k equal L)

i.e. a mixed-radix number whose digit order is fixed here once: **position 0 is the least significant
digit**. The id space of a chunk ("hash size") is the product of its cardinalities; packing is a
bijection onto ``[0, hash_size)``, so :func:`unpack` inverts it exactly by floor-div/mod.

Prefix n-grams (:func:`prefix_ngrams`) pack the first ``j+1`` positions: with coarse-to-fine
quantizers (residual levels) items that agree on the coarse levels share the short n-gram ids, which
is what lets a ranker generalise from warm to cold items.

SIDE (:func:`side_codes`) skips the table altogether: the codes themselves, centred around zero
(ternary codes become -1, 0, 1), are used as a dense float feature.

Every id here is int64, and every hash size is checked against ``2**63 - 1`` *before* any arithmetic,
so an oversized layout is an :class:`~sidlib.errors.InvalidInputError`, never a silent wrap-around.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from sidlib.errors import InvalidInputError
from sidlib.validation import as_code_matrix

INT64_MAX = np.iinfo(np.int64).max


def _as_cardinalities(cardinalities: Sequence[int]) -> list[int]:
    """Cardinalities as Python ints (exact products), each at least 1, at least one position."""
    cards = [int(c) for c in cardinalities]
    if not cards:
        raise InvalidInputError("cardinalities is empty: a SID needs at least one code position")
    if any(c < 1 for c in cards):
        raise InvalidInputError(f"cardinalities must all be >= 1, got {cards}")
    return cards


def _as_positions(positions: Sequence[int] | None, n_positions: int) -> list[int]:
    """The chunk's positions in digit order (``None`` = all); must be distinct and in range."""
    if positions is None:
        return list(range(n_positions))
    pos = [int(p) for p in positions]
    if not pos:
        raise InvalidInputError("positions is empty: pack at least one code position")
    if len(set(pos)) != len(pos):
        raise InvalidInputError(f"positions must be distinct, got {pos}")
    bad = [p for p in pos if not 0 <= p < n_positions]
    if bad:
        raise InvalidInputError(f"positions {bad} out of range for {n_positions} code position(s)")
    return pos


def _checked_size(cards: Sequence[int]) -> int:
    """Exact product of ``cards``, or an error if ids of that space would not fit in int64."""
    size = math.prod(cards)
    if size > INT64_MAX:
        raise InvalidInputError(
            f"hash size {size} (product of cardinalities {list(cards)}, {math.log2(size):.1f} bits) "
            f"exceeds int64 (2**63 - 1); pack fewer positions per id"
        )
    return size


def _place_values(cards: Sequence[int]) -> np.ndarray:
    """Weight of each digit, ``prod_{j<k} L_j``, as int64 (after the overflow check)."""
    _checked_size(cards)
    return np.array([math.prod(cards[:k]) for k in range(len(cards))], dtype=np.int64)


def hash_size(cardinalities: Sequence[int], positions: Sequence[int] | None = None) -> int:
    """Number of distinct ids :func:`pack` can produce for this chunk: ``prod L_k`` over ``positions``."""
    cards = _as_cardinalities(cardinalities)
    return _checked_size([cards[p] for p in _as_positions(positions, len(cards))])


def pack(codes: Any, cardinalities: Sequence[int], positions: Sequence[int] | None = None) -> np.ndarray:
    """Pack ``codes[:, positions]`` (int ``[n, n_positions]``) into int64 ids ``[n]``.

    ``positions`` picks the chunk and its digit order: ``positions[0]`` is the least significant
    digit. Default: all positions, so ``unpack(pack(c, L), L) == c``.
    """
    cards = _as_cardinalities(cardinalities)
    pos = _as_positions(positions, len(cards))
    place = _place_values([cards[p] for p in pos])
    arr = as_code_matrix(codes, cards)
    return arr[:, pos] @ place


def unpack(ids: Any, cardinalities: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pack` over all positions: int64 ids ``[n]`` -> codes int64 ``[n, n_positions]``."""
    cards = _as_cardinalities(cardinalities)
    place = _place_values(cards)
    arr = _as_id_vector(ids, _checked_size(cards))
    return (arr[:, None] // place) % np.asarray(cards, dtype=np.int64)


def _as_id_vector(ids: Any, size: int, *, name: str = "ids") -> np.ndarray:
    """``ids`` as int64 ``[n]``, non-empty, every id in ``[0, size)``.

    Float ids are refused rather than rounded: above 2**53 a float cannot hold every integer."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-D array [n], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (0 rows)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{name} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    _check_id_range(int(arr.min()), int(arr.max()), size, name)
    return arr


def _check_id_range(lowest: int, highest: int, size: int, name: str) -> None:
    if lowest < 0:
        raise InvalidInputError(f"{name} must be non-negative, got {lowest}")
    if highest >= size:
        raise InvalidInputError(f"{name} out of range: {highest} >= hash size {size}")


def _checked_n_max(n_positions: int, n_max: int | None) -> int:
    n_max = n_positions if n_max is None else int(n_max)
    if not 1 <= n_max <= n_positions:
        raise InvalidInputError(f"n_max must be in [1, {n_positions}], got {n_max}")
    return n_max


def prefix_ngrams(codes: Any, cardinalities: Sequence[int], n_max: int | None = None) -> np.ndarray:
    """Prefix n-gram ids int64 ``[n, n_max]``: column ``j`` is ``pack`` of positions ``0..j``.

    Because position 0 is the least significant digit, column ``j`` is column ``j-1`` plus one more
    digit, so all columns come from one cumulative sum. Ids of different columns live in different
    spaces (sizes from :func:`prefix_hash_sizes`); offset them before sharing one table.
    """
    cards = _as_cardinalities(cardinalities)
    n_max = _checked_n_max(len(cards), n_max)
    place = _place_values(cards[:n_max])
    arr = as_code_matrix(codes, cards)
    return np.cumsum(arr[:, :n_max] * place, axis=1)


def prefix_hash_sizes(cardinalities: Sequence[int], n_max: int | None = None) -> list[int]:
    """Hash size of each :func:`prefix_ngrams` column: ``prod_{k<=j} L_k``."""
    cards = _as_cardinalities(cardinalities)
    return [hash_size(cards, range(j + 1)) for j in range(_checked_n_max(len(cards), n_max))]


def _chunks(n_positions: int, n: int) -> list[range]:
    if n < 1:
        raise InvalidInputError(f"chunk length n must be >= 1, got {n}")
    return [range(start, min(start + n, n_positions)) for start in range(0, n_positions, n)]


def chunk_ngrams(codes: Any, cardinalities: Sequence[int], n: int) -> np.ndarray:
    """Ids of non-overlapping chunks of ``n`` consecutive positions, int64 ``[n_items, ceil(P / n)]``.

    The last chunk is shorter when ``n`` does not divide the number of positions ``P``. This trades
    the prefix sharing of :func:`prefix_ngrams` for smaller per-column id spaces.
    """
    cards = _as_cardinalities(cardinalities)
    chunks = _chunks(len(cards), int(n))
    places = [_place_values([cards[p] for p in chunk]) for chunk in chunks]
    arr = as_code_matrix(codes, cards)
    return np.stack([arr[:, chunk.start:chunk.stop] @ place for chunk, place in zip(chunks, places)], axis=1)


def chunk_hash_sizes(cardinalities: Sequence[int], n: int) -> list[int]:
    """Hash size of each :func:`chunk_ngrams` column."""
    cards = _as_cardinalities(cardinalities)
    return [hash_size(cards, chunk) for chunk in _chunks(len(cards), int(n))]


def _centres(cards: Sequence[int]) -> np.ndarray:
    """``(L_k - 1) / 2``: subtracting it puts each position's codes symmetrically around zero."""
    return (np.asarray(cards, dtype=np.float32) - 1) / 2


def centre_codes(codes: Any, cardinalities: Sequence[int]) -> np.ndarray:
    """SIDE features of code vectors: float32 ``[n, P]`` with ``c_k - (L_k - 1) / 2``.

    Works on code vectors directly, so it also serves layouts too large to pack into one int64 id.
    """
    cards = _as_cardinalities(cardinalities)
    return as_code_matrix(codes, cards).astype(np.float32) - _centres(cards)


def side_codes(ids: Any, cardinalities: Sequence[int]) -> np.ndarray:
    """SIDE features of packed ids: ``centre_codes(unpack(ids))``, float32 ``[n, P]``.

    Ternary positions map to -1, 0, 1 and L=256 to -127.5 .. 127.5: usable directly as a dense
    embedding, with no table to learn. Values are exact in float32 while every ``L_k <= 2**24``.
    """
    cards = _as_cardinalities(cardinalities)
    return centre_codes(unpack(ids, cards), cards)


def side_codes_torch(ids: torch.Tensor, cardinalities: Sequence[int]) -> torch.Tensor:
    """:func:`side_codes` on the ids' own device (for the ranker's input pipeline); bit-identical.

    ``ids`` is an integer tensor ``[n]``. The range check costs one device sync; it stays because a
    negative or oversized id would otherwise decode silently to valid-looking codes.
    """
    cards = _as_cardinalities(cardinalities)
    size = _checked_size(cards)
    if not isinstance(ids, torch.Tensor):
        raise InvalidInputError(f"ids must be a torch tensor, got {type(ids).__name__}")
    if ids.dim() != 1 or ids.shape[0] == 0:
        raise InvalidInputError(f"ids must be a non-empty 1-D tensor [n], got shape {tuple(ids.shape)}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InvalidInputError(f"ids must be integers, got dtype {ids.dtype}")
    ids = ids.long()
    lowest, highest = torch.aminmax(ids)
    _check_id_range(int(lowest), int(highest), size, "ids")
    place = torch.from_numpy(_place_values(cards)).to(ids.device)
    card_t = torch.tensor(cards, dtype=torch.int64, device=ids.device)
    codes = torch.div(ids[:, None], place, rounding_mode="floor") % card_t
    return codes.float() - torch.from_numpy(_centres(cards)).to(ids.device)


__all__ = [
    "centre_codes",
    "chunk_hash_sizes",
    "chunk_ngrams",
    "hash_size",
    "pack",
    "prefix_hash_sizes",
    "prefix_ngrams",
    "side_codes",
    "side_codes_torch",
    "unpack",
]
