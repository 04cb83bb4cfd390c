"""The contract every registered quantizer keeps, checked name by name on the same small data.

``build(name, dim=..., bits=..., **params)``; ``fit`` returns the quantizer; ``encode`` gives int64
``[n, n_codes]`` codes in range; ``decode`` gives float32 ``[n, dim]``; ``bits == sum(log2(c))``;
save/load and a second fit with the same seed reproduce the codes; bad input is an
``InvalidInputError`` whose message names the problem.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers import NAMES, Quantizer, build, load, quantizer_class

DIM = 32
#: kmeans has one codebook of 2**bits centroids: keep it well below the 1,500 training points.
BITS = {"kmeans": 6}
DEFAULT_BITS = 12
#: Training-budget knobs lowered to keep the suite fast. Each class names its own knobs, so a knob
#: is passed only to constructors that accept it (the VQ-VAE wrapper gets its own copy).
SPEED_KNOBS: dict[str, Any] = {"epochs": 3, "max_iter": 10}


def clustered_unit_rows(n: int = 1500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, DIM))
    X = centres[rng.integers(0, 30, n)] + 0.4 * rng.normal(size=(n, DIM))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


X = clustered_unit_rows()


def _accepted(cls: type, knobs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in knobs.items() if k in params}


def build_small(name: str) -> Quantizer:
    cls = quantizer_class(name)
    vae = None
    if getattr(cls, "default_vae", False):
        from sidlib.quantizers.vqvae import VQVAE

        vae = _accepted(VQVAE, SPEED_KNOBS) or None
    return build(name, dim=DIM, bits=BITS.get(name, DEFAULT_BITS), vae=vae, **_accepted(cls, SPEED_KNOBS))


def fit_small(name: str, global_seed: int) -> Quantizer:
    """Fit with the global RNGs set to ``global_seed``: results must depend on the quantizer's own
    ``seed`` only, so two different global seeds must give the same model."""
    torch.manual_seed(global_seed)
    np.random.seed(global_seed)
    q = build_small(name)
    assert q.fit(X) is q
    return q


@pytest.fixture(scope="module", params=NAMES)
def fitted(request: pytest.FixtureRequest) -> Quantizer:
    return fit_small(request.param, global_seed=1)


def test_encode_decode_shapes_and_types(fitted: Quantizer) -> None:
    codes = fitted.encode(X)
    assert isinstance(codes, np.ndarray) and codes.dtype == np.int64
    assert codes.shape == (len(X), fitted.n_codes) == (len(X), len(fitted.cardinalities))
    assert (codes >= 0).all() and (codes < np.asarray(fitted.cardinalities)).all()
    X_hat = fitted.decode(codes)
    assert isinstance(X_hat, np.ndarray) and X_hat.dtype == np.float32
    assert X_hat.shape == (len(X), DIM) and np.isfinite(X_hat).all()


def test_bits_is_sum_of_log2_cardinalities(fitted: Quantizer) -> None:
    assert all(isinstance(c, int) and c >= 1 for c in fitted.cardinalities)
    assert fitted.bits == pytest.approx(sum(math.log2(c) for c in fitted.cardinalities))


def test_save_load_round_trip(fitted: Quantizer, tmp_path: Path) -> None:
    fitted.save(tmp_path / "q")
    again = load(tmp_path / "q")
    assert type(again) is type(fitted) and again.cardinalities == fitted.cardinalities
    codes = fitted.encode(X)
    np.testing.assert_array_equal(again.encode(X), codes)
    np.testing.assert_array_equal(again.decode(codes), fitted.decode(codes))


def test_deterministic_for_a_seed(fitted: Quantizer) -> None:
    again = fit_small(fitted.name, global_seed=2)
    np.testing.assert_array_equal(again.encode(X), fitted.encode(X))


BAD_ROWS = [
    pytest.param(np.vstack([X[:3], np.full((1, DIM), np.nan)]), "NaN", id="nan-row"),
    pytest.param(X[:, :-1], "dimension", id="wrong-dim"),
    pytest.param(X[:0], "empty", id="empty"),
]


@pytest.mark.parametrize("bad, message", BAD_ROWS)
def test_encode_names_bad_rows(fitted: Quantizer, bad: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fitted.encode(bad)


@pytest.mark.parametrize("bad, message", BAD_ROWS)
def test_fit_names_bad_rows(fitted: Quantizer, bad: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_small(fitted.name).fit(bad)


def test_decode_names_out_of_range_codes(fitted: Quantizer) -> None:
    codes = np.zeros((2, fitted.n_codes), dtype=np.int64)
    codes[1, -1] = fitted.cardinalities[-1]
    with pytest.raises(InvalidInputError, match="out of range"):
        fitted.decode(codes)


def test_unknown_name_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown quantizer 'nope'"):
        build("nope", dim=DIM, bits=DEFAULT_BITS)
