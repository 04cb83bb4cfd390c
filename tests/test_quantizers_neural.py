"""Neural quantizers (dpca, structured, fsq, rq_vae) and the VQ-VAE around them, on small synthetic
clustered unit vectors: layout, reconstruction quality, training, persistence, determinism,
straight-through gradients, prefix decoding and input checks."""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache

import numpy as np
import pytest
import torch

from sidlib.errors import InvalidInputError
from sidlib.quantizers import build, load
from sidlib.quantizers.training import reconstruction_loss

DIM = 48
FAST = {"epochs": 6, "device": "cpu"}
VAE = {"latent_dim": 16, "hidden": [64], "epochs": 6, "warmup_epochs": 3, "device": "cpu"}
HAS_RQ_KMEANS = importlib.util.find_spec("sidlib.quantizers.rq_kmeans") is not None

#: case -> (registry name, build kwargs). Every case is fitted once (see ``fitted``).
CASES = {
    "dpca": ("dpca", FAST),
    "structured": ("structured", FAST),
    "fsq": ("fsq", FAST),
    "rq_vae": ("rq_vae", {"vae": False, **FAST}),
    "vqvae_dpca": ("dpca", {"vae": VAE}),
    "vqvae_rq_vae": ("rq_vae", {"vae": VAE}),
    "vqvae_rq_kmeans": ("rq_kmeans", {"vae": VAE}),
}
PREFIX_CASES = ["dpca", "structured", "rq_vae", "vqvae_dpca", "vqvae_rq_vae"]


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 centres (a stand-in for sentence embeddings)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(40, DIM))
    x = centres[rng.integers(40, size=n)] + 0.5 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


TRAIN, TEST = clustered(2000, seed=1), clustered(400, seed=2)


def cosine_loss(x: np.ndarray, x_hat: np.ndarray) -> float:
    return float(reconstruction_loss(torch.from_numpy(x_hat), torch.from_numpy(x), "cosine"))


MEAN_BASELINE = cosine_loss(TEST, np.broadcast_to(TRAIN.mean(0), TEST.shape).copy())


def make(case: str, **overrides):
    """Build ``case``; ``overrides`` (seed, epochs, ...) go to the VQ-VAE when there is one."""
    name, kwargs = CASES[case]
    if name == "rq_kmeans" and not HAS_RQ_KMEANS:
        pytest.skip("sidlib.quantizers.rq_kmeans is not available yet")
    if "vae" in kwargs and kwargs["vae"]:
        return build(name, DIM, 24, vae={**kwargs["vae"], **overrides})
    return build(name, DIM, 24, **{**kwargs, **overrides})


@lru_cache(maxsize=None)
def fitted(case: str):
    return make(case).fit(TRAIN)


def test_layouts_from_bits():
    dpca = build("dpca", 384, 24)
    assert (dpca.levels, dpca.groups, dpca.cardinalities) == (5, 3, [3] * 15)
    assert dpca.bits == pytest.approx(15 * math.log2(3)) and dpca.bits == pytest.approx(23.77, abs=0.01)
    assert build("dpca", 384, 24, groups=5).cardinalities == [3] * 15
    assert build("dpca", 384, 24, groups=2, levels=4).n_codes == 8
    assert build("structured", 384, 24).cardinalities == [256] * 3
    assert build("structured", 384, 24, lines=16, points=4, groups=2).cardinalities == [64] * 4
    assert build("fsq", 384, 24).cardinalities == [3] * 15
    assert build("fsq", 384, levels=[8, 5, 5, 5]).bits == pytest.approx(math.log2(8 * 125))
    assert build("rq_vae", 384, 24, vae=False).cardinalities == [256] * 3
    vae = build("rq_vae", 384, 24)
    assert vae.name == "vqvae" and vae.inner.dim == 64 and vae.cardinalities == [256] * 3


@pytest.mark.parametrize("case", CASES)
def test_codes_and_reconstruction(case):
    q = fitted(case)
    codes = q.encode(TEST)
    assert codes.dtype == np.int64 and codes.shape == (len(TEST), q.n_codes)
    assert (codes >= 0).all() and (codes < np.array(q.cardinalities)).all()
    x_hat = q.decode(codes)
    assert x_hat.dtype == np.float32 and x_hat.shape == TEST.shape
    assert cosine_loss(TEST, x_hat) < 0.6 * MEAN_BASELINE


@pytest.mark.parametrize("case", CASES)
def test_training_lowers_the_loss(case):
    history = fitted(case).history
    assert history and all(map(math.isfinite, history)) and history[-1] < history[0]


@pytest.mark.parametrize("case", CASES)
def test_save_load_roundtrip(case, tmp_path):
    q = fitted(case)
    again = load(q.save(tmp_path / case))
    assert type(again) is type(q) and again.config == q.config
    np.testing.assert_array_equal(again.encode(TEST), q.encode(TEST))
    np.testing.assert_array_equal(again.decode(q.encode(TEST)), q.decode(q.encode(TEST)))


@pytest.mark.parametrize("case", ["dpca", "structured", "fsq", "rq_vae", "vqvae_dpca"])
def test_fit_is_deterministic_for_a_seed(case):
    first, second = (make(case, epochs=2).fit(TRAIN[:1000]) for _ in range(2))
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), key
    other = make(case, epochs=2, seed=1).fit(TRAIN[:1000])
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))


@pytest.mark.parametrize(
    "case, params",
    [("dpca", ["u", "b"]), ("structured", ["u", "b"]), ("fsq", ["project_in.weight", "project_out.weight"]),
     ("rq_vae", ["codebooks"]), ("vqvae_dpca", ["encoder.0.weight", "inner.u"])],
)
def test_straight_through_gradients(case, params):
    q = fitted(case).train()
    z = torch.from_numpy(TEST[:64]).requires_grad_(True)
    out = q.quantize(z)
    np.testing.assert_array_equal(out.codes.numpy(), q.encode(TEST[:64]))
    (reconstruction_loss(out.z_q, z.detach(), "cosine") + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    named = dict(q.named_parameters())
    for name in params:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    q.zero_grad()


@pytest.mark.parametrize("case", PREFIX_CASES)
def test_longer_prefixes_reconstruct_better(case):
    q = fitted(case)
    codes = q.encode(TEST)
    levels = q.inner.levels if case.startswith("vqvae") else q.levels
    losses = []
    for m in range(1, levels + 1):
        view = q.prefix(m)
        np.testing.assert_array_equal(view.encode(TEST), codes[:, : view.n_codes])
        losses.append(cosine_loss(TEST, view.decode(codes[:, : view.n_codes])))
    assert losses[-1] == pytest.approx(cosine_loss(TEST, q.decode(codes)), abs=1e-6)
    assert all(b <= a + 1e-3 for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0]
    with pytest.raises(InvalidInputError):
        q.prefix(levels + 1)


def test_dpca_initialisation_alone_beats_the_mean():
    q = build("dpca", DIM, 24, epochs=0, device="cpu").fit(TRAIN)
    assert cosine_loss(TEST, q.decode(q.encode(TEST))) < 0.8 * MEAN_BASELINE


def test_config_rebuilds_an_identical_unfitted_module():
    q = fitted("vqvae_dpca")
    again = type(q)(**q.config)
    assert again.config == q.config and not again.is_fitted
    assert [p.shape for p in again.parameters()] == [p.shape for p in q.parameters()]


def test_bad_input_is_rejected():
    q = fitted("dpca")
    with pytest.raises(InvalidInputError):
        q.encode(TEST[:, :10])
    with pytest.raises(InvalidInputError):
        q.decode(np.full((2, q.n_codes), 3))
    bad = TRAIN[:100].copy()
    bad[5, 0] = np.nan
    with pytest.raises(InvalidInputError):
        build("dpca", DIM, 24, device="cpu").fit(bad)
    with pytest.raises(InvalidInputError):
        build("fsq", DIM, 24).encode(TEST)  # not fitted
    with pytest.raises(InvalidInputError):
        build("structured", DIM, 24, recon="l1")
    with pytest.raises(InvalidInputError):
        build("rq_vae", DIM, 24, vae=False, no_such_option=1)
    with pytest.raises(InvalidInputError):
        build("dpca", DIM, 2)
    with pytest.raises(InvalidInputError):
        build("fsq", DIM, levels=[3, 1])


def test_mse_reconstruction_and_progress_logging(caplog):
    with caplog.at_level("INFO", logger="sidlib.quantizers.training"):
        q = build("fsq", DIM, 24, recon="mse", epochs=5, patience=0, device="cpu").fit(TRAIN[:1000])
    assert cosine_loss(TEST, q.decode(q.encode(TEST))) < 0.8 * MEAN_BASELINE
    assert "fsq epoch 5/5" in caplog.text


def test_dead_codes_are_reseeded_from_recent_residuals():
    from sidlib.quantizers.rq_vae import DeadCodes

    codebooks = torch.nn.Parameter(torch.zeros(1, 4, 2))
    dead = DeadCodes(codebooks, window=2, generator=torch.Generator().manual_seed(0))
    residual = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    for _ in range(2):
        dead.observe(0, torch.tensor([0, 1]), residual)
        with torch.no_grad():
            dead.step()
    assert torch.equal(codebooks[0, :2], torch.zeros(2, 2))  # used codes stay
    assert all(any(torch.equal(row, r) for r in residual) for row in codebooks[0, 2:])


def test_quantizer_dropout_truncates_some_rows_to_a_prefix():
    q = fitted("rq_vae")
    kept = q._kept_levels(1000)
    assert kept.shape == (1000, q.levels) and kept[:, 0].all()
    assert (kept.diff(dim=1) <= 0).all()  # a prefix of levels, never a gap
    assert 0.05 < (kept.sum(1) < q.levels).float().mean() < 0.3  # about quantizer_dropout * 2/3 of the rows


def test_early_stop_waits_out_a_rising_loss_and_stops_on_a_plateau():
    from sidlib.quantizers.training import plateaued

    assert not plateaued([1.0], 1e-3)
    assert not plateaued([1.0, 1.4], 1e-3)        # climbing: not converged
    assert not plateaued([1.4, 1.2], 1e-3)        # falling fast
    assert plateaued([1.2, 1.2001], 1e-3)         # flat, either way
    assert plateaued([1.2, 1.1999], 1e-3)


def test_rq_vae_refinement_leaves_no_tiny_clusters():
    """The refinement after training splits clusters below ``min_cluster_share`` of the average, so
    every code serves a real share of the rows (dead-code reset alone leaves codes on a few rows);
    with ``refine_iterations=0`` the trained codebooks are kept as they are."""
    counts = []
    for iterations in (0, 10):
        q = build("rq_vae", DIM, vae=False, codebook_size=32, levels=2, refine_iterations=iterations,
                  **FAST).fit(TRAIN)
        codes = q.encode(TRAIN)
        counts.append(np.stack([np.bincount(codes[:, level], minlength=32) for level in range(2)]))
    average = len(TRAIN) / 32
    assert counts[0].min() < 0.1 * average <= counts[1].min()


def test_vqvae_refits_its_decoder_after_rq_vae_refinement(caplog):
    with caplog.at_level("INFO", logger="sidlib.quantizers.training"):
        q = make("vqvae_rq_vae").fit(TRAIN)
    assert "decoder fine-tune" in caplog.text
    assert cosine_loss(TEST, q.decode(q.encode(TEST))) < 0.5 * MEAN_BASELINE
