"""Metrics on hand-computed cases, plus the recall protocol's edge cases (identity, noise, ties)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sidlib.errors import InvalidInputError
from sidlib.metrics import (
    cosine_loss,
    largest_collision_bucket,
    mse,
    normalized_entropy,
    perplexity,
    recall_at_k,
    reconstruction_report,
    unique_sid_rate,
    utilization,
)
from sidlib.quantizers import BatchStream, Quantizer


def clustered(n: int = 600, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    return (centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


# ---------------------------------------------------------------- NE
def test_normalized_entropy_hand_computed() -> None:
    labels, probs = [1, 0, 0, 1], [0.8, 0.3, 0.1, 0.6]
    log_loss = -(math.log(0.8) + math.log(0.7) + math.log(0.9) + math.log(0.6)) / 4
    base_entropy = -(0.5 * math.log(0.5) + 0.5 * math.log(0.5))
    assert normalized_entropy(labels, probs) == pytest.approx(log_loss / base_entropy, rel=1e-12)


def test_normalized_entropy_of_base_rate_predictor_is_one() -> None:
    labels = np.array([1, 0, 0, 0, 1, 0, 0])
    assert normalized_entropy(labels, np.full(7, 2 / 7)) == pytest.approx(1.0, rel=1e-12)


def test_normalized_entropy_clips_confident_misses() -> None:
    assert math.isfinite(normalized_entropy([1, 0], [0.0, 1.0]))


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        ([], [], "empty"),
        ([1, 1], [0.5, 0.5], "base rate"),
        ([0, 0], [0.5, 0.5], "base rate"),
        ([1, 0], [0.5], "equal length"),
        ([1, 2], [0.5, 0.5], "0 or 1"),
        ([1, 0], [0.5, 1.5], r"\[0, 1\]"),
        ([1, 0], [0.5, np.nan], r"\[0, 1\]"),
    ],
)
def test_normalized_entropy_bad_input(labels, probs, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        normalized_entropy(labels, probs)


# ---------------------------------------------------------- reconstruction
def test_cosine_loss_and_mse() -> None:
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_loss(X, X) == pytest.approx(0.0, abs=1e-12)
    assert cosine_loss(X, 3 * X) == pytest.approx(0.0, abs=1e-12)
    assert cosine_loss(X, X[::-1]) == pytest.approx(1.0)
    assert cosine_loss(X, -X) == pytest.approx(2.0)
    assert mse(X, X) == 0.0
    assert mse(X, np.zeros_like(X)) == pytest.approx((1 + 4) / 4)


def test_reconstruction_metrics_reject_mismatched_input() -> None:
    with pytest.raises(InvalidInputError, match="dimension"):
        cosine_loss(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match="rows"):
        mse(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(InvalidInputError, match="NaN"):
        cosine_loss(np.ones((2, 3)), np.array([[1, 2, np.nan], [1, 1, 1]]))


# -------------------------------------------------------------- code usage
def test_utilization_and_perplexity() -> None:
    codes = np.array([[0, 0], [1, 0], [2, 0], [3, 1]])
    np.testing.assert_allclose(utilization(codes, [4, 8]), [1.0, 2 / 8])
    # position 0: 4 equally used codes -> 4; position 1: p = (3/4, 1/4)
    expected_1 = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    np.testing.assert_allclose(perplexity(codes, [4, 8]), [4.0, expected_1])
    assert perplexity(np.zeros((5, 1), dtype=int), [3]).tolist() == [1.0]


def test_usage_rejects_out_of_range_codes() -> None:
    with pytest.raises(InvalidInputError, match="out of range"):
        utilization(np.array([[0, 8]]), [4, 8])


def test_unique_rate_and_largest_bucket() -> None:
    codes = np.array([[0, 1], [0, 1], [0, 1], [2, 0], [1, 1]])
    assert unique_sid_rate(codes) == pytest.approx(3 / 5)
    assert largest_collision_bucket(codes) == 3
    assert unique_sid_rate(np.arange(6).reshape(3, 2)) == 1.0
    assert largest_collision_bucket(np.arange(6).reshape(3, 2)) == 1
    with pytest.raises(InvalidInputError, match="2-D integer"):
        unique_sid_rate(np.zeros((0, 2), dtype=int))


# ------------------------------------------------------------------ recall
def test_recall_is_one_on_the_raw_embedding() -> None:
    X = clustered()
    assert recall_at_k(X, X, (20, 50), n_queries=200, metric="cosine") == {20: 1.0, 50: 1.0}
    # Euclidean on unit rows ranks like cosine
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert recall_at_k(X, unit, (20,), n_queries=200)[20] == pytest.approx(1.0)


def test_recall_is_low_for_random_representation() -> None:
    X = clustered()
    noise = np.random.default_rng(1).normal(size=(600, 8))
    result = recall_at_k(X, noise, (20, 50, 100), n_queries=200)
    assert result[20] < 0.15
    assert result[20] <= result[50] <= result[100]


def test_recall_is_deterministic_and_breaks_ties_by_index() -> None:
    X = clustered()
    codes = np.random.default_rng(2).integers(0, 2, size=(600, 3)).astype(np.float32)  # 8 cells: ties galore
    first = recall_at_k(X, codes, (20, 100), n_queries=100, seed=3)
    assert first == recall_at_k(X, codes, (20, 100), n_queries=100, seed=3)
    # A constant representation makes every item tie, so each query's candidates are the 20 lowest
    # item indices other than itself; recall is their overlap with the truth, computed naively here
    # with every item as a query.
    flat = np.zeros((600, 2), dtype=np.float32)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = []
    for q in range(600):
        sims = unit @ unit[q]
        sims[q] = -np.inf
        truth = set(np.argsort(-sims, kind="stable")[:20].tolist())
        candidates = set([i for i in range(21) if i != q][:20])
        expected.append(len(truth & candidates) / 20)
    assert recall_at_k(X, flat, (20,), n_queries=600)[20] == pytest.approx(np.mean(expected))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k_values=(600,)), "k_values"),
        (dict(k_values=()), "k_values"),
        (dict(ref_k=0), "ref_k"),
        (dict(n_queries=0), "n_queries"),
        (dict(metric="manhattan"), "metric"),
    ],
)
def test_recall_bad_input(kwargs, message: str) -> None:
    X = clustered()
    with pytest.raises(InvalidInputError, match=message):
        recall_at_k(X, X, **kwargs)


def test_recall_rejects_row_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="rows"):
        recall_at_k(clustered(), clustered()[:-1])


# ------------------------------------------------------------------ report
class SignQuantizer(Quantizer):
    """One bit per dimension: the smallest real quantizer, so the report is tested on its own."""

    name = "sign"

    @property
    def cardinalities(self) -> list[int]:
        return [2] * self.dim

    def fit_stream(self, batches: BatchStream) -> "SignQuantizer":
        self.finish_fit()
        return self

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).long()

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float() * 2 - 1


def test_reconstruction_report() -> None:
    X = clustered()
    q = SignQuantizer(dim=16).fit(X)
    report = reconstruction_report(q, X, k_values=(20, 50), n_queries=100)
    codes = q.encode(X)
    assert report["bits"] == 16.0
    assert report["cosine_loss"] == pytest.approx(cosine_loss(X, q.decode(codes)))
    assert report["unique_sid_rate"] == pytest.approx(unique_sid_rate(codes))
    assert report["largest_collision_bucket"] == largest_collision_bucket(codes)
    assert 0 < report["utilization_min"] <= report["utilization_mean"] <= 1
    assert 1 <= report["perplexity_min"] <= report["perplexity_mean"] <= 2
    # sign codes keep neighbourhoods far better than chance (20/599 ~ 0.03)
    assert 0.3 < report["side_recall@20"] <= report["side_recall@50"] <= 1
    assert 0.3 < report["recon_recall@20"] <= 1
    assert set(report) >= {"mse", "n_items", "recon_recall@50"}
