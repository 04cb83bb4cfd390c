"""Warm starts: a refit that starts from the previous fit's state instead of a fresh initialisation."""

from __future__ import annotations

import numpy as np
import pytest

from sidlib.errors import InvalidInputError
from sidlib.data.synthetic import clustered_embeddings
from sidlib.quantizers import build

X = clustered_embeddings(600, seed=3)
NEURAL = {"epochs": 1}


@pytest.mark.parametrize(("name", "bits"), [("rq_kmeans", 12), ("kmeans", 6)])
def test_a_warm_em_refit_of_unchanged_data_reproduces_the_codes_whatever_the_seed(name: str, bits: int) -> None:
    old = build(name, 384, bits, seed=0).fit(X)
    cold = build(name, 384, bits, seed=1).fit(X)
    warm = build(name, 384, bits, seed=1).warm_start(old).fit(X)
    assert np.array_equal(warm.encode(X), old.encode(X))
    assert not np.array_equal(cold.encode(X), old.encode(X))  # the seed alone would have moved them


def test_a_warm_gmm_refit_keeps_nearly_every_code() -> None:
    old = build("rq_gmm", 384, 12, seed=0).fit(X)
    warm = build("rq_gmm", 384, 12, seed=1).warm_start(old).fit(X)
    assert np.mean((warm.encode(X) == old.encode(X)).all(1)) >= 0.95  # soft EM still moves a little


VAE = {"latent_dim": 16, "hidden": [32], "epochs": 1, "warmup_epochs": 1}


@pytest.mark.parametrize(("name", "options"), [("dpca", NEURAL), ("fsq", NEURAL), ("rq_vae", NEURAL),
                                               ("rq_kmeans", {"vae": VAE}), ("dpca", {"vae": VAE})])
def test_a_warm_neural_fit_starts_from_the_previous_weights(name: str, options: dict) -> None:
    old = build(name, 384, 12, seed=0, **options).fit(X)
    warm = build(name, 384, 12, seed=1, **options).warm_start(old)
    loaded = warm.state_dict()
    assert all(np.array_equal(loaded[k], v) for k, v in old.state_dict().items())
    warm.fit(X)  # trains on from the loaded state (no re-initialisation), then is an ordinary fitted model
    assert warm.is_fitted and not warm.warm and warm.encode(X).shape == old.encode(X).shape


def test_warm_start_refuses_another_class_layout_or_an_unfitted_model() -> None:
    fitted = build("rq_kmeans", 384, 12).fit(X)
    with pytest.raises(InvalidInputError, match="KMeans from RQKMeans"):
        build("kmeans", 384, 6).warm_start(build("rq_kmeans", 384, 6).fit(X))
    with pytest.raises(InvalidInputError, match="cardinalities"):
        build("rq_kmeans", 384, 16).warm_start(fitted)
    with pytest.raises(InvalidInputError, match="never fitted"):
        build("rq_kmeans", 384, 12).warm_start(build("rq_kmeans", 384, 12))


def test_fit_artifacts_warm_starts_a_neural_quantizer_in_its_spark_task(pipeline, caplog) -> None:  # type: ignore[no-untyped-def]
    """The previous quantizer travels to the training task; a layout it cannot start (other bits) fits
    from scratch with a warning, and each manifest says which happened."""
    import dataclasses
    import logging

    from sidlib.artifacts import ArtifactStore
    from sidlib.steps.fit import fit_artifacts

    cfg, tables = pipeline
    store = ArtifactStore(cfg.artifacts.root)
    fit = dataclasses.replace(cfg.fit, quantizer="fsq", params={"epochs": 1})
    (first,) = fit_artifacts(tables, store, fit, cfg.data_quality).artifacts
    (warm,) = fit_artifacts(tables, store, fit, cfg.data_quality, warm_start={"text": first.artifact}).artifacts
    assert warm.artifact.manifest["warm_start_from"] == first.version
    with caplog.at_level(logging.WARNING, logger="sidlib.steps.fit"):
        (cold,) = fit_artifacts(tables, store, dataclasses.replace(fit, bits=8), cfg.data_quality,
                                warm_start={"text": first.artifact}).artifacts
    assert cold.artifact.manifest["warm_start_from"] is None
    assert f"fitting from scratch, not from v{first.version}" in caplog.text
