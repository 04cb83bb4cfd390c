"""Properties of the SID codecs: exact round trips, the n-gram rule, overflow and SIDE centring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sidlib.errors import InvalidInputError
from sidlib.sid import (
    centre_codes,
    chunk_hash_sizes,
    chunk_ngrams,
    hash_size,
    pack,
    prefix_hash_sizes,
    prefix_ngrams,
    side_codes,
    side_codes_torch,
    unpack,
)


def random_layout(seed: int, n: int = 500) -> tuple[np.ndarray, list[int]]:
    """Random mixed cardinalities (1..300, at most ~60 bits in all) and random codes in range."""
    rng = np.random.default_rng(seed)
    cards = rng.integers(1, 300, size=rng.integers(1, 8)).tolist()
    while math.prod(cards) > 2**60:
        cards.pop()
    codes = rng.integers(0, cards, size=(n, len(cards)))
    return codes, cards


@pytest.mark.parametrize("seed", range(50))
def test_pack_unpack_round_trip(seed: int) -> None:
    codes, cards = random_layout(seed)
    ids = pack(codes, cards)
    assert ids.dtype == np.int64 and ids.shape == (len(codes),)
    assert ids.min() >= 0 and ids.max() < hash_size(cards)
    np.testing.assert_array_equal(unpack(ids, cards), codes)


@pytest.mark.parametrize("seed", range(20))
def test_pack_is_the_ngram_rule(seed: int) -> None:
    codes, cards = random_layout(seed, n=50)
    expected = [sum(math.prod(cards[:k]) * int(row[k]) for k in range(len(cards))) for row in codes]
    assert pack(codes, cards).tolist() == expected


def test_equal_cardinalities_give_powers() -> None:
    codes = np.array([[1, 2, 0, 2], [0, 0, 0, 1]])
    assert pack(codes, [3] * 4).tolist() == [1 + 2 * 3 + 0 * 9 + 2 * 27, 27]


def test_pack_is_a_bijection_onto_the_hash_space() -> None:
    cards = [2, 3, 4]
    all_codes = np.stack(np.meshgrid(*[range(c) for c in cards], indexing="ij"), -1).reshape(-1, 3)
    assert sorted(pack(all_codes, cards).tolist()) == list(range(hash_size(cards)))


def test_pack_chunk_of_positions() -> None:
    codes = np.array([[1, 2, 3], [4, 0, 1]])
    cards = [5, 3, 7]
    # positions[0] is the least significant digit of the chunk
    assert pack(codes, cards, positions=[2, 0]).tolist() == [3 + 7 * 1, 1 + 7 * 4]
    assert hash_size(cards, positions=[2, 0]) == 35
    assert hash_size(cards) == 105


@pytest.mark.parametrize("seed", range(10))
def test_prefix_ngram_columns_are_prefix_packs(seed: int) -> None:
    codes, cards = random_layout(seed)
    grams = prefix_ngrams(codes, cards)
    assert grams.dtype == np.int64 and grams.shape == codes.shape
    for j in range(len(cards)):
        np.testing.assert_array_equal(grams[:, j], pack(codes[:, : j + 1], cards[: j + 1]))
    assert prefix_hash_sizes(cards) == [math.prod(cards[: j + 1]) for j in range(len(cards))]
    assert prefix_ngrams(codes, cards, n_max=1).shape == (len(codes), 1)


def test_items_sharing_a_coarse_prefix_share_prefix_ids() -> None:
    grams = prefix_ngrams(np.array([[3, 1, 0], [3, 1, 2], [3, 0, 2]]), [4, 4, 4])
    assert grams[0, 1] == grams[1, 1] != grams[2, 1]
    assert len(set(grams[:, 0])) == 1


def test_chunk_ngrams_with_a_ragged_last_chunk() -> None:
    cards = [3, 5, 2, 7, 4]
    codes = np.random.default_rng(0).integers(0, cards, size=(100, 5))
    grams = chunk_ngrams(codes, cards, 2)
    assert grams.shape == (100, 3)
    for col, chunk in enumerate([[0, 1], [2, 3], [4]]):
        np.testing.assert_array_equal(grams[:, col], pack(codes, cards, positions=chunk))
    assert chunk_hash_sizes(cards, 2) == [15, 14, 4]


def test_overflow_raises_up_front() -> None:
    cards = [256] * 8  # 2**64 ids
    codes = np.zeros((2, 8), dtype=np.int64)
    calls = [
        lambda: hash_size(cards),
        lambda: pack(codes, cards),
        lambda: unpack([0], cards),
        lambda: prefix_ngrams(codes, cards),
        lambda: side_codes_torch(torch.zeros(1, dtype=torch.long), cards),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="exceeds int64"):
            call()
    # a chunk or a prefix that fits is still fine
    assert prefix_ngrams(codes, cards, n_max=7).shape == (2, 7)
    with pytest.raises(InvalidInputError, match="exceeds int64"):
        hash_size([2**32, 2**31])  # exactly 2**63


def test_largest_ids_round_trip() -> None:
    cards = [7, (2**63 - 1) // 7]  # 2**63 - 1 = 7 * 1317624576693539401: the largest legal space
    top = np.array([[6, cards[1] - 1], [1, 2]])
    ids = pack(top, cards)
    assert hash_size(cards) == np.iinfo(np.int64).max
    assert ids[0] == np.iinfo(np.int64).max - 1
    np.testing.assert_array_equal(unpack(ids, cards), top)


def test_side_centring_values() -> None:
    ternary = side_codes(pack(np.array([[0, 1, 2]]), [3, 3, 3]), [3, 3, 3])
    assert ternary.dtype == np.float32
    assert ternary.tolist() == [[-1.0, 0.0, 1.0]]
    byte = side_codes(np.array([0, 255, 128]), [256])
    assert byte[:, 0].tolist() == [-127.5, 127.5, 0.5]
    np.testing.assert_array_equal(centre_codes(np.array([[2, 0]]), [3, 256]), [[1.0, -127.5]])


@pytest.mark.parametrize("seed", range(10))
def test_side_torch_equals_numpy(seed: int) -> None:
    codes, cards = random_layout(seed)
    ids = pack(codes, cards)
    got = side_codes_torch(torch.from_numpy(ids), cards)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), side_codes(ids, cards))


def test_side_torch_accepts_int32_ids() -> None:
    ids = np.arange(27)
    got = side_codes_torch(torch.from_numpy(ids).int(), [3, 3, 3])
    np.testing.assert_array_equal(got.numpy(), side_codes(ids, [3, 3, 3]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pack(np.zeros((3, 2), dtype=int), [4, 4, 4]), "shape"),
        (lambda: pack(np.array([[0, 4]]), [4, 4]), "out of range"),
        (lambda: pack(np.array([[0, -1]]), [4, 4]), "out of range"),
        (lambda: pack(np.zeros((0, 2), dtype=int), [4, 4]), "empty"),
        (lambda: pack(np.array([[0.5, 1]]), [4, 4]), "integers"),
        (lambda: pack(np.zeros((1, 2), dtype=int), [4, 0]), ">= 1"),
        (lambda: pack(np.zeros((1, 2), dtype=int), []), "empty"),
        (lambda: pack(np.zeros((1, 2), dtype=int), [4, 4], positions=[0, 0]), "distinct"),
        (lambda: pack(np.zeros((1, 2), dtype=int), [4, 4], positions=[2]), "out of range"),
        (lambda: unpack(np.array([-1, 3]), [4, 4]), "non-negative"),
        (lambda: unpack(np.array([16]), [4, 4]), "hash size 16"),
        (lambda: unpack(np.array([1.0]), [4, 4]), "integers"),
        (lambda: unpack(np.array([[1]]), [4, 4]), "1-D"),
        (lambda: prefix_ngrams(np.zeros((1, 2), dtype=int), [4, 4], n_max=3), "n_max"),
        (lambda: chunk_ngrams(np.zeros((1, 2), dtype=int), [4, 4], 0), "chunk length"),
        (lambda: side_codes(np.array([-2]), [3, 3]), "non-negative"),
        (lambda: side_codes_torch(torch.tensor([9]), [3, 3]), "hash size 9"),
        (lambda: side_codes_torch(torch.tensor([-1]), [3, 3]), "non-negative"),
        (lambda: side_codes_torch(torch.tensor([1.0]), [3, 3]), "integers"),
        (lambda: side_codes_torch(np.array([1]), [3, 3]), "torch tensor"),
    ],
)
def test_bad_input_raises(call, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()
