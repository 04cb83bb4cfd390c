"""Aligned refits: a new version's codes relabelled to agree with the previous version's, within what
keeps their meaning (cluster permutations where codes are unordered, direction flips where ordinal)."""

from __future__ import annotations

import numpy as np
import pytest

from sidlib.alignment import align, alignment_maps, apply_maps, best_relabel
from sidlib.data.synthetic import clustered_embeddings
from sidlib.quantizers import build, serialize
from sidlib.quantizers.labels import LabelSymmetry, Relabel

X = clustered_embeddings(600, seed=5)
NEURAL = {"epochs": 1}
VAE = {"latent_dim": 16, "hidden": [32], "epochs": 1, "warmup_epochs": 1}
FAMILIES = [("rq_kmeans", 12, {}), ("kmeans", 6, {}), ("rq_gmm", 12, {}), ("rq_vae", 12, NEURAL),
            ("structured", 8, {"lines": 4, "points": 4, "epochs": 1}), ("dpca", 12, NEURAL), ("fsq", 12, NEURAL),
            ("rq_kmeans", 12, {"vae": VAE}), ("dpca", 12, {"vae": VAE})]


def _random_relabel(symmetry: LabelSymmetry, rng: np.random.Generator) -> Relabel:
    lines = rng.permutation(symmetry.lines) if symmetry.permute_lines else np.arange(symmetry.lines)
    flips = rng.random(symmetry.lines) < 0.5 if symmetry.flip_points else np.zeros(symmetry.lines, dtype=bool)
    return Relabel(lines, flips)


@pytest.mark.parametrize(("name", "bits", "options"), FAMILIES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_permuted_refit_is_aligned_back_exactly(name: str, bits: int, options: dict) -> None:
    fitted = build(name, 384, bits, seed=0, **options).fit(X)
    old = fitted.encode(X)
    symmetries = fitted.label_symmetries()
    assert [s.cardinality for s in symmetries] == fitted.cardinalities
    assert any(s.permute_lines or s.flip_points for s in symmetries), "every family has relabellings"

    # the same model with its clusters renumbered and directions negated: what a refit may find
    permuted = serialize.from_bytes(serialize.to_bytes(fitted))
    rng = np.random.default_rng(1)
    maps = [_random_relabel(s, rng) for s in symmetries]
    permuted.relabel(maps)
    relabelled = permuted.encode(X)
    np.testing.assert_array_equal(relabelled, apply_maps(symmetries, maps, old))
    np.testing.assert_allclose(permuted.decode(relabelled), fitted.decode(old), atol=1e-5)  # same meaning
    assert (relabelled != old).any()

    report = align(permuted, X, old)
    np.testing.assert_array_equal(permuted.encode(X), old)
    assert report["after"] == {"first_code": 1.0, "full_sid": 1.0} and report["mismatch"] == 0
    assert report["before"]["full_sid"] < 1.0
    np.testing.assert_allclose(permuted.decode(old), fitted.decode(old), atol=1e-5)
    again = serialize.from_bytes(serialize.to_bytes(permuted))  # the relabelling is saved with the weights
    np.testing.assert_array_equal(again.encode(X), old)


def test_matching_keeps_the_most_codes_and_flips_follow_the_majority() -> None:
    symmetry = LabelSymmetry(lines=3, points=3, permute_lines=True, flip_points=True)
    old = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1])      # line = code // 3, point = code % 3
    # new numbering: old line 0 -> new 2 (reversed), old 1 -> new 0, old 2 -> new 1
    truth = Relabel(np.array([2, 0, 1]), np.array([True, False, False]))
    new = truth.code_map(symmetry)[old]
    found = best_relabel(symmetry, new, old)
    np.testing.assert_array_equal(found.code_map(symmetry)[new], old)
    fixed = LabelSymmetry.fixed(4)
    assert best_relabel(fixed, np.array([1, 2]), np.array([2, 1])).is_identity  # nothing may move
    with pytest.raises(ValueError, match="positions"):
        alignment_maps([fixed], np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2), dtype=np.int64))


def test_relabel_refuses_what_the_symmetry_does_not_allow() -> None:
    from sidlib.errors import InvalidInputError

    dpca = build("dpca", 384, 12, epochs=1).fit(X)
    swap = [Relabel(np.array([0]), np.array([False])) for _ in dpca.cardinalities]
    with pytest.raises(InvalidInputError, match="positions"):
        dpca.relabel(swap[:-1])
    kmeans = build("kmeans", 384, 4).fit(X)
    with pytest.raises(InvalidInputError, match="flip"):
        kmeans.relabel([Relabel(np.arange(16), np.ones(16, dtype=bool))])
    with pytest.raises(InvalidInputError, match="permutation"):
        kmeans.relabel([Relabel(np.zeros(16, dtype=np.int64), np.zeros(16, dtype=bool))])


def test_refresh_on_a_new_upstream_model_aligns_the_new_version(pipeline) -> None:  # type: ignore[no-untyped-def]
    """A new model's refit keeps more of the items' codes than its raw numbering would, its encode
    writes exactly the aligned codes, and the manifest records what alignment kept."""
    import pandas as pd

    from sidlib import schemas
    from sidlib.artifacts import ArtifactStore
    from sidlib.jobs import refresh

    cfg, tables = pipeline
    assert cfg.refresh.align  # on by default
    cfg.refresh.force_switch = True  # the noisier view may cost the gate's 2% of loss: not what this tests
    refresh.run(cfg, tables)
    rows = tables.read("content_embeddings").frame.where("signal = 'text'").toPandas()
    noise = np.random.default_rng(0).standard_normal((len(rows), 384)).astype(np.float32)
    moved = np.stack(rows["embedding"].to_numpy()) + 0.02 * noise  # another model's view of the same items
    rows = rows.assign(model_version="all-MiniLM-L6-v2@2", logged_at=pd.Timestamp("2026-02-01"),
                       embedding=list(moved / np.linalg.norm(moved, axis=1, keepdims=True)))
    tables.write(tables.spark.createDataFrame(rows, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    (result,) = refresh.run(cfg, tables).signals
    assert result.action == "refit" and result.sid_version == 2

    alignment = ArtifactStore(cfg.artifacts.root).get(2).manifest["alignment"]
    assert alignment["to_version"] == 1 and alignment["items"] == 120 and alignment["mismatch"] == 0
    assert alignment["after"]["first_code"] > alignment["before"]["first_code"]
    assert alignment["after"]["full_sid"] >= alignment["before"]["full_sid"]
    sids = tables.read("item_sids").frame.toPandas()
    old, new = (np.stack(sids[sids.sid_version == v].sort_values("item_id")["codes"].to_numpy()) for v in (1, 2))
    assert np.mean(old[:, 0] == new[:, 0]) == pytest.approx(alignment["after"]["first_code"])

    cfg.refresh.align = False
    rows = rows.assign(model_version="all-MiniLM-L6-v2@3")
    tables.write(tables.spark.createDataFrame(rows, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    (unaligned,) = refresh.run(cfg, tables).signals
    assert ArtifactStore(cfg.artifacts.root).get(unaligned.sid_version).manifest["alignment"] is None

    cfg.refresh.align, cfg.fit.bits = True, 9  # another layout: 3 levels of 8 codes, not of 16
    rows = rows.assign(model_version="all-MiniLM-L6-v2@4")
    tables.write(tables.spark.createDataFrame(rows, schema=schemas.ddl(schemas.CONTENT_EMBEDDINGS)),
                 "content_embeddings", expected=schemas.CONTENT_EMBEDDINGS, mode="append")
    (relaid,) = refresh.run(cfg, tables).signals
    skipped = ArtifactStore(cfg.artifacts.root).get(relaid.sid_version).manifest["alignment"]
    assert skipped == {"to_version": unaligned.sid_version,
                       "skipped": f"v{unaligned.sid_version} has cardinalities [16, 16, 16], "
                                  f"the new version [8, 8, 8]"}
