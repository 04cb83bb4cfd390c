"""VQ-fusion (``sidlib.quantizers.fusion``) on a small real sample: the first 300 MovieLens items with
their text and credits MiniLM embeddings (credits missing for some) and genres multi-hot.

Layout helpers, shapes, masking of a missing signal (its values reach neither the loss nor any
gradient), training lowers the loss, every inner quantizer family fits, save/load through the
registry, determinism, and bad input."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from sidlib.config import SidlibConfig
from sidlib.errors import InvalidInputError
from sidlib.jobs.ingest_demo_data import build_frames
from sidlib.metrics import signal_report
from sidlib.quantizers import build, load
from sidlib.quantizers.fusion import FusionQuantizer, fusion_input, split_output

CACHE = Path(__file__).resolve().parents[1] / "data" / "cache"
SIGNALS = [
    {"name": "text", "dim": 384, "kind": "embedding", "weight": 1.0},
    {"name": "credits", "dim": 384, "kind": "embedding"},
    {"name": "genres", "dim": 18, "kind": "multilabel"},
]
DIM = 384 + 384 + 18 + 3
SMALL = {"latent_dim": 16, "hidden": [64], "signal_hidden": 32, "epochs": 8, "warmup_epochs": 2,
         "batch_size": 32, "patience": 0, "device": "cpu"}


@lru_cache(maxsize=None)
def real_signals() -> dict[str, list]:
    """Per-signal values of the first 300 items, ``None`` where an item has no credits."""
    cfg = SidlibConfig()
    cfg.ingest.cache_dir = str(CACHE)
    cfg.ingest.max_items = 300
    content = build_frames(cfg)["content_embeddings"]
    ids = np.sort(content["item_id"].unique())
    by_signal = {s: dict(zip(g["item_id"], g["embedding"])) for s, g in content.groupby("signal")}
    return {s["name"]: [by_signal[s["name"]].get(i) for i in ids] for s in SIGNALS}


@lru_cache(maxsize=None)
def real_rows() -> np.ndarray:
    return fusion_input(SIGNALS, real_signals())


def make(quantizer: str = "dpca", **overrides) -> FusionQuantizer:
    q = build("fusion", DIM, 24, signals=SIGNALS, quantizer=quantizer, **{**SMALL, **overrides})
    assert isinstance(q, FusionQuantizer)
    return q


@lru_cache(maxsize=None)
def fitted(quantizer: str = "dpca") -> FusionQuantizer:
    return make(quantizer).fit(real_rows())


def test_fusion_input_layout_and_split() -> None:
    values, X = real_signals(), real_rows()
    assert X.shape == (300, DIM) and X.dtype == np.float32
    missing = np.array([v is None for v in values["credits"]])
    assert 0 < missing.sum() < 300  # the sample really has items without credits
    np.testing.assert_array_equal(X[:, -3:], np.stack([np.ones(300), ~missing, np.ones(300)], 1))
    parts = split_output(SIGNALS, X)
    assert [p.shape[1] for p in parts.values()] == [384, 384, 18]
    assert not parts["credits"][missing].any()
    np.testing.assert_array_equal(parts["text"], np.stack(values["text"]))
    np.testing.assert_array_equal(parts["credits"][~missing], np.stack([v for v in values["credits"] if v is not None]))


@pytest.mark.parametrize("values, message", [
    ({"text": np.zeros((2, 384))}, "missing"),
    ({"text": np.zeros((2, 384)), "credits": [None, None], "genres": np.zeros((2, 18)), "x": [None, None]}, "unknown"),
    ({"text": np.zeros((2, 384)), "credits": [None], "genres": np.zeros((2, 18))}, "different numbers of rows"),
    ({"text": np.zeros((2, 383)), "credits": [None, None], "genres": np.zeros((2, 18))}, "dimension"),
])
def test_fusion_input_refuses_bad_values(values: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fusion_input(SIGNALS, values)


def test_encode_decode_shapes() -> None:
    q, X = fitted(), real_rows()
    codes = q.encode(X)
    assert codes.shape == (300, q.n_codes) and codes.dtype == np.int64
    assert q.cardinalities == [3] * 15 and q.bits == pytest.approx(23.77, abs=0.01)
    X_hat = q.decode(codes)
    assert X_hat.shape == (300, DIM) and X_hat.dtype == np.float32
    np.testing.assert_array_equal(X_hat[:, -3:], 1.0)  # every signal is reconstructed, also the missing ones
    genres = split_output(SIGNALS, X_hat)["genres"]
    assert ((genres >= 0) & (genres <= 1)).all()  # probabilities
    report = signal_report(q.layout, X, X_hat)
    assert set(report) == {"text_cosine_loss", "credits_cosine_loss", "genres_micro_f1", "genres_exact_match"}


def test_a_missing_signal_reaches_neither_loss_nor_gradients() -> None:
    q, X = fitted(), torch.from_numpy(real_rows())
    missing = X[:, DIM - 2] == 0
    noisy = X.clone()
    noisy[missing, 384:768] = torch.randn(int(missing.sum()), 384, generator=torch.Generator().manual_seed(0))

    def loss_and_grads(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        q.zero_grad()
        loss = q.training_loss(x)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in q.parameters() if p.grad is not None]

    loss, grads = loss_and_grads(X)
    noisy_loss, noisy_grads = loss_and_grads(noisy)
    assert float(loss) > 0 and len(grads) > 0
    torch.testing.assert_close(noisy_loss, loss, rtol=0, atol=0)
    for g, h in zip(grads, noisy_grads, strict=True):
        torch.testing.assert_close(h, g, rtol=0, atol=0)
    np.testing.assert_array_equal(q.encode(noisy.numpy()), q.encode(X.numpy()))
    changed = X.clone()  # whereas a present signal's values do count
    changed[~missing, 384:768] = changed[~missing, 384:768].roll(1, 0)
    with torch.no_grad():
        assert float(q.training_loss(changed)) != float(loss)


def test_training_lowers_the_loss() -> None:
    X = torch.from_numpy(real_rows())
    q = fitted()
    assert q.history[-1] < q.history[0]
    before = make()
    before.prepare_training(X)  # quantizer initialised on the untrained encoder's latents
    with torch.no_grad():
        assert float(q.training_loss(X)) < 0.8 * float(before.training_loss(X))


@pytest.mark.parametrize("inner", ["fsq", "rq_vae", "rq_kmeans"])
def test_other_inner_quantizers_fit(inner: str) -> None:
    q, X = fitted(inner), real_rows()
    assert q.inner.name == inner and q.is_fitted and q.inner.is_fitted
    assert q.history[-1] < q.history[0]
    assert np.isfinite(q.decode(q.encode(X))).all()


def test_categorical_signal_is_decoded_as_a_distribution() -> None:
    """A single-label signal (each item's first genre, one-hot) gets a softmax and cross-entropy."""
    genres = np.stack(real_signals()["genres"])
    first = np.eye(18, dtype=np.float32)[genres.argmax(1)]
    signals = [SIGNALS[0], {"name": "first_genre", "dim": 18, "kind": "categorical", "weight": 2.0}]
    X = fusion_input(signals, {"text": np.stack(real_signals()["text"]), "first_genre": first})
    q = build("fusion", 384 + 18 + 2, 24, signals=signals, **SMALL).fit(X)
    probs = split_output(signals, q.decode(q.encode(X)))["first_genre"]
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert signal_report(q.layout, X, q.decode(q.encode(X)))["first_genre_accuracy"] > 1 / 18


def test_save_load_through_the_registry(tmp_path: Path) -> None:
    q, X = fitted(), real_rows()
    q.save(tmp_path / "fusion")
    again = load(tmp_path / "fusion")
    assert isinstance(again, FusionQuantizer) and again.config == q.config
    codes = q.encode(X)
    np.testing.assert_array_equal(again.encode(X), codes)
    np.testing.assert_array_equal(again.decode(codes), q.decode(codes))


def test_deterministic_for_a_seed() -> None:
    torch.manual_seed(123)  # the global RNG must not matter
    again = make().fit(real_rows())
    np.testing.assert_array_equal(again.encode(real_rows()), fitted().encode(real_rows()))
    assert again.history == fitted().history


def test_wrong_dim_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="does not match the signals"):
        build("fusion", DIM - 3, 24, signals=SIGNALS)
    with pytest.raises(InvalidInputError, match="dimension"):
        fitted().encode(real_rows()[:, :-1])
    with pytest.raises(InvalidInputError, match="dimension"):
        make().fit(real_rows()[:, 1:])


def test_bad_flags_and_specs_are_refused() -> None:
    X = real_rows().copy()
    X[0, -1] = 0.5
    with pytest.raises(InvalidInputError, match="presence flags"):
        fitted().encode(X)
    with pytest.raises(InvalidInputError, match="presence flags"):
        make().fit(X)
    with pytest.raises(InvalidInputError, match="kind"):
        build("fusion", 5, signals=[{"name": "a", "dim": 4, "kind": "image"}])
    with pytest.raises(InvalidInputError, match="distinct names"):
        build("fusion", 6, signals=[{"name": "a", "dim": 2}, {"name": "a", "dim": 2}])
    with pytest.raises(InvalidInputError, match="recon"):
        build("fusion", DIM, signals=SIGNALS, recon="cosine")
    with pytest.raises(InvalidInputError, match="already is a VQ-VAE"):
        build("fusion", DIM, signals=SIGNALS, quantizer="vqvae")
