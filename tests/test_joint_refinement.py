"""Joint codebook refinement of residual quantizers (the LSQ codebook step after level-wise EM)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sidlib.data.synthetic import clustered_embeddings
from sidlib.metrics import cosine_loss
from sidlib.quantizers import build

X = clustered_embeddings(1500, seed=11)


def _training_sse(q, x: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    return float(((x - q.decode(q.encode(x))) ** 2).sum())


@pytest.mark.parametrize(("name", "options"), [("rq_kmeans", {"beam_size": 1}), ("rq_kmeans", {"beam_size": 4}),
                                               ("rq_kmeans", {"refine_prefix_weight": 0.0}),
                                               ("rq_gmm", {"refine_rounds": 5})])
def test_refinement_never_increases_the_training_loss(name: str, options: dict) -> None:
    options = {"refine_rounds": 10, **options}
    plain = build(name, 384, 12, seed=3, **{**options, "refine_rounds": 0}).fit(X)
    refined = build(name, 384, 12, seed=3, **options).fit(X)
    assert _training_sse(refined, X) <= _training_sse(plain, X)
    if name == "rq_kmeans":
        assert _training_sse(refined, X) < 0.999 * _training_sse(plain, X)  # and it does improve it


def test_a_round_that_makes_it_worse_is_undone_and_stops() -> None:
    q = build("rq_kmeans", 384, 12, refine_rounds=0).fit(X)
    stats = q.refinement_statistics(X)
    before = q.codebooks.clone()
    assert q.apply_refinement(stats, solve=True)  # first round: solved from these codes
    moved = q.codebooks.clone()
    assert not np.allclose(moved.numpy(), before.numpy())
    worse = {**stats, "sse": stats["sse"] * 2}  # as if the new codebooks encoded worse
    assert not q.apply_refinement(worse, solve=True)
    np.testing.assert_array_equal(q.codebooks.numpy(), before.numpy())  # back to the best seen


def test_the_prefix_weight_protects_the_first_codes() -> None:
    first = {}
    for weight in (0.0, 0.1):
        q = build("rq_kmeans", 384, 12, seed=3, refine_rounds=10, refine_prefix_weight=weight).fit(X)
        codes = q.encode(X)
        first[weight] = cosine_loss(X, q.prefix(1).decode(codes[:, :1]))
    assert first[0.1] < first[0.0]


def test_one_level_or_zero_rounds_means_no_refinement() -> None:
    assert build("kmeans", 384, 8).refine_rounds == 0
    assert build("rq_kmeans", 384, 12, refine_rounds=0).refine_rounds == 0
    assert build("rq_kmeans", 384, 12).refine_rounds > 0  # on by default


def test_the_distributed_refinement_equals_the_in_process_one(spark, caplog) -> None:  # type: ignore[no-untyped-def]
    """The executors' statistics drive the same rounds: the same codebooks up to float summation order."""
    from sidlib.spark.fit import fit_em_distributed, fit_em_in_process

    ids = np.arange(len(X), dtype=np.int64)
    frame = spark.createDataFrame([(int(i), x.tolist()) for i, x in zip(ids, X)], "item_id bigint, embedding array<float>")
    sample = X[:1024]
    with caplog.at_level(logging.INFO, logger="sidlib.spark.fit"):
        distributed = fit_em_distributed(build("rq_kmeans", 384, 12, seed=3), frame, sample, partitions=3)
        in_process = fit_em_in_process(build("rq_kmeans", 384, 12, seed=3), X, sample)
    rounds = [r.getMessage() for r in caplog.records if "joint refinement" in r.getMessage()]
    assert len(rounds) == 2 and "partitions" in rounds[0] and "in the driver" in rounds[1]
    np.testing.assert_allclose(distributed.codebooks.numpy(), in_process.codebooks.numpy(), atol=1e-4)
    assert np.mean((distributed.encode(X) == in_process.encode(X)).all(1)) > 0.99
    reference = build("rq_kmeans", 384, 12, seed=3, refine_rounds=0)
    assert _training_sse(in_process, X) < _training_sse(fit_em_in_process(reference, X, sample), X)
