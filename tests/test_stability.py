"""Hysteresis for recurring refits: previous codes kept unless the new ones are clearly better."""

from __future__ import annotations

import numpy as np
import pytest

from sidlib.errors import InvalidInputError
from sidlib.metrics import row_cosine_loss
from sidlib.data.synthetic import clustered_embeddings
from sidlib.quantizers import build
from sidlib.stability import stable_codes

X = clustered_embeddings(400, seed=3)


@pytest.fixture(scope="module")
def refit() -> tuple[object, np.ndarray, np.ndarray]:
    """An rq_kmeans fit, the codes of a fit with another seed (the 'previous' version), and its own codes."""
    q = build("rq_kmeans", 384, 12, seed=0).fit(X)
    previous = build("rq_kmeans", 384, 12, seed=1).fit(X).encode(X)
    return q, previous, q.encode(X)


def test_margin_zero_keeps_exactly_the_previous_codes_that_are_no_worse(refit) -> None:  # type: ignore[no-untyped-def]
    q, previous, new = refit
    codes = stable_codes(q, X, previous, 0.0)
    differ = ~(new == previous).all(1)
    assert differ.sum() > 100  # another seed: most items have other codes
    kept_old = differ & (codes == previous).all(1)
    took_new = differ & (codes == new).all(1)
    assert np.array_equal(kept_old | took_new, differ)  # each such row gets one or the other
    loss_old, loss_new = row_cosine_loss(X, q.decode(previous)), row_cosine_loss(X, q.decode(new))
    assert (loss_old[kept_old] <= loss_new[kept_old] + 1e-9).all()
    assert (loss_old[took_new] > loss_new[took_new]).all()


def test_a_wider_margin_keeps_more_and_an_infinite_one_keeps_all(refit) -> None:  # type: ignore[no-untyped-def]
    q, previous, _ = refit
    shares = [np.mean((stable_codes(q, X, previous, m) == previous).all(1)) for m in (0.0, 0.1, 1e9)]
    assert shares[0] <= shares[1] <= shares[2] == 1.0


def test_items_without_previous_codes_get_new_ones_and_shapes_are_checked(refit) -> None:  # type: ignore[no-untyped-def]
    q, previous, new = refit
    missing = previous.copy()
    missing[:10] = -1  # items new since the previous version
    codes = stable_codes(q, X, missing, 1e9)
    assert np.array_equal(codes[:10], new[:10]) and np.array_equal(codes[10:], previous[10:])
    with pytest.raises(InvalidInputError, match="shape"):
        stable_codes(q, X, previous[:, :2], 0.1)
    with pytest.raises(InvalidInputError, match="margin"):
        stable_codes(q, X, previous, -0.1)
