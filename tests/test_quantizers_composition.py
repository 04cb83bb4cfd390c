"""How the quantizers are put together: the latent models assembled from an encoder, a decoder, an
inner quantizer and an objective (not from each other), k-means beside residual k-means rather than
under it, and :func:`~sidlib.quantizers.training.train` minimising the objective it is given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sidlib.errors import InvalidInputError
from sidlib.quantizers import array_batches, build
from sidlib.quantizers.fusion import FusionDecoder, FusionEncoder, FusionQuantizer
from sidlib.quantizers.kmeans import KMeans
from sidlib.quantizers.latent import LatentQuantizer
from sidlib.quantizers.residual_em import ResidualEMQuantizer
from sidlib.quantizers.rq_kmeans import RQKMeans
from sidlib.quantizers.training import Reconstruction, TrainSettings, reconstruction_loss, step_loss, train
from sidlib.quantizers.vqvae import VQVAE

SIGNALS = [{"name": "a", "dim": 6, "kind": "embedding"}, {"name": "b", "dim": 4, "kind": "multilabel"}]
SMALL = {"latent_dim": 4, "hidden": [8], "warmup_epochs": 1, "epochs": 2, "patience": 0, "device": "cpu"}


def test_latent_models_are_assembled_not_derived() -> None:
    assert not issubclass(FusionQuantizer, VQVAE) and not issubclass(VQVAE, FusionQuantizer)
    fusion = build("fusion", 6 + 4 + 2, 12, signals=SIGNALS, **SMALL)
    assert isinstance(fusion, LatentQuantizer)
    assert isinstance(fusion.encoder, FusionEncoder) and isinstance(fusion.decoder, FusionDecoder)
    assert fusion.objective == fusion.layout.loss  # the per-signal losses, nothing zeroed
    vae = build("dpca", 8, 12, vae={**SMALL, "recon": "mse"})
    assert isinstance(vae, VQVAE) and isinstance(vae, LatentQuantizer)
    assert vae.objective == Reconstruction("mse") and vae.inner.name == "dpca"


def test_a_latent_model_trains_on_its_objective() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 8)).astype(np.float32)
    vae = build("fsq", 8, 12, vae={**SMALL, "recon": "mse"})
    x = torch.from_numpy(X)
    raw, extra = vae.training_forward(x)
    assert torch.equal(vae.training_loss(x), reconstruction_loss(raw, x, "mse") + extra)
    with pytest.raises(InvalidInputError, match="recon"):
        build("fusion", 12, 12, signals=SIGNALS, recon="mse")


def test_kmeans_is_not_a_residual_kmeans() -> None:
    assert not issubclass(KMeans, RQKMeans)
    assert issubclass(KMeans, ResidualEMQuantizer) and issubclass(RQKMeans, ResidualEMQuantizer)


def test_kmeans_and_one_level_residual_kmeans_fit_the_same_codebook() -> None:
    """The shared E- and M-steps: k-means is exactly residual k-means with one level."""
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(10, 8))[rng.integers(0, 10, 500)] + 0.2 * rng.normal(size=(500, 8))).astype(np.float32)
    kmeans = KMeans(8, k=16, device="cpu").fit(X)
    residual = RQKMeans(8, levels=1, codebook_size=16, device="cpu").fit(X)
    assert torch.equal(kmeans.codebooks, residual.codebooks)
    np.testing.assert_array_equal(kmeans.encode(X), residual.encode(X))


def test_train_minimises_the_objective_it_is_given() -> None:
    """A one-weight model and an objective that is no reconstruction: the output should be 3 x."""
    weight = nn.Parameter(torch.ones(()))

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return weight * x, x.new_zeros(())

    def objective(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (output - 3 * x).pow(2).mean()

    X = np.random.default_rng(2).normal(size=(256, 4)).astype(np.float32)
    settings = TrainSettings(epochs=20, lr=0.05, batch_size=16, patience=0)
    history = train(forward, objective, [weight], array_batches(X), settings, dim=4, device=torch.device("cpu"),
                    generator=torch.Generator().manual_seed(0))
    assert weight.item() == pytest.approx(3.0, abs=1e-2)
    assert history[-1] < 1e-3 < history[0]
    x = torch.from_numpy(X)
    with torch.no_grad():
        assert step_loss(forward, objective, x).item() == pytest.approx(objective(weight * x, x).item())


def test_train_adds_the_models_own_loss_terms() -> None:
    """``extra`` (a quantizer's commitment and codebook terms) is minimised along with the objective."""
    weight = nn.Parameter(torch.full((), 2.0))

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, weight.pow(2)  # the objective below ignores the output: only extra depends on weight

    X = np.ones((32, 2), dtype=np.float32)
    train(forward, lambda output, x: (output - x).pow(2).mean(), [weight], array_batches(X),
          TrainSettings(epochs=20, lr=0.05, batch_size=4, patience=0), dim=2, device=torch.device("cpu"),
          generator=torch.Generator().manual_seed(0))
    assert abs(weight.item()) < 0.05
