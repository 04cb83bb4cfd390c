"""The shared VQ-VAE: an MLP encoder to a small latent, any registered quantizer on the latent, and an
MLP decoder back to the embedding.

A neural inner quantizer (dpca, structured, fsq, rq_vae) trains jointly with the networks through its
straight-through :meth:`quantize`, after a short autoencoder warm-up and an initialisation of the
quantizer on the warmed-up latents; if the inner quantizer then refines its codebooks on the final
latents (rq_vae does), the decoder is fine-tuned on the new codewords with everything else frozen.
An EM inner quantizer (kmeans, rq_kmeans, rq_gmm) cannot take gradients, so it trains in stages:
autoencoder warm-up, EM on the encoder's latents, then the decoder fine-tuned on quantized latents
with the encoder frozen.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sidlib.errors import InvalidInputError
from sidlib.quantizers import quantizer_class
from sidlib.quantizers.base import BatchStream, EMQuantizer, QuantizeOutput
from sidlib.quantizers.residual import PrefixView
from sidlib.quantizers.training import Forward, NeuralQuantizer, seeded, train
from sidlib.validation import as_float_matrix


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers through ``sizes``; hidden layers get LayerNorm and GELU."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers += [nn.LayerNorm(n_out), nn.GELU()]
    return nn.Sequential(*layers)


class VQVAE(NeuralQuantizer):
    """Encoder ``dim -> hidden -> latent_dim``, inner quantizer ``quantizer`` built as
    ``quantizer_class(quantizer)(dim=latent_dim, bits=bits, seed=seed, device=device, **quantizer_params)``,
    decoder ``latent_dim -> reversed(hidden) -> dim``. Codes and cardinalities are the inner's. The
    default inner quantizer is ``rq_vae``, so ``build("vqvae", dim)`` is the classic RQ-VAE.

    ``warmup_epochs`` of plain autoencoding come first; ``epochs`` (and the other
    :class:`~sidlib.quantizers.training.TrainSettings` fields in ``training``) then govern the
    quantized phase. The inner quantizer's own training settings are not used.
    """

    name = "vqvae"

    def __init__(
        self, dim: int, quantizer: str = "rq_vae", bits: float = 24, quantizer_params: dict[str, Any] | None = None, *,
        latent_dim: int = 64, hidden: Sequence[int] = (512,), warmup_epochs: int = 5, seed: int = 0,
        device: str | None = "auto", encode_batch_size: int = 65536, **training: Any,
    ):
        if quantizer == self.name:
            raise InvalidInputError("the VQ-VAE cannot wrap another VQ-VAE")
        super().__init__(dim, seed=seed, device=device, encode_batch_size=encode_batch_size, **training)
        if latent_dim < 1 or warmup_epochs < 0 or any(h < 1 for h in hidden):
            raise InvalidInputError(f"need latent_dim >= 1, hidden sizes >= 1, warmup_epochs >= 0; got "
                                    f"{latent_dim}, {list(hidden)}, {warmup_epochs}")
        self.warmup_epochs = int(warmup_epochs)
        quantizer_params = dict(quantizer_params or {})
        with seeded(self.seed):
            self.encoder = mlp([dim, *hidden, latent_dim])
            self.decoder = mlp([latent_dim, *reversed(hidden), dim])
            self.inner = quantizer_class(quantizer)(
                dim=latent_dim, bits=bits, **{"seed": seed, "device": device, **quantizer_params}
            )
        if not isinstance(self.inner, (NeuralQuantizer, EMQuantizer)):
            raise InvalidInputError(f"quantizer {quantizer!r} is neither gradient- nor EM-trained")

    @property
    def cardinalities(self) -> list[int]:
        return self.inner.cardinalities

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_tensor(self.encoder(x))

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.inner.decode_tensor(codes))

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """Encoder, the inner quantizer's straight-through pass, decoder: ``z_q`` is the reconstruction."""
        out = self.inner.quantize(self.encoder(z))
        return QuantizeOutput(z_q=self.decoder(out.z_q), codes=out.codes, loss=out.loss)

    def prefix(self, n_levels: int) -> PrefixView:
        """The first ``n_levels`` levels of a residual inner quantizer (one with ``prefix_codes``),
        decoded through the decoder."""
        if not hasattr(self.inner, "prefix_codes"):
            raise InvalidInputError(f"the inner quantizer {self.inner.name!r} has no level prefixes")
        return PrefixView(self, self.inner.prefix_codes(n_levels))

    def extra_metrics(self) -> dict[str, float]:
        return self.inner.extra_metrics()

    # ---------------------------------------------------------------- training
    def fit_stream(self, batches: BatchStream) -> "VQVAE":
        self.to_preferred_device().train()
        sample = self.sample_rows(batches)
        self.generator.manual_seed(self.seed)
        self._fit(self._autoencode, self.parameters(), batches, epochs=self.warmup_epochs, label="warm-up")
        if isinstance(self.inner, EMQuantizer):
            self.inner.fit_stream(self._latent_stream(batches))
            self.history = self._fit(self._decode_quantized, self.decoder.parameters(), batches)
        else:
            self.prepare_training(sample)
            self.history = self._fit(self.training_forward, self.parameters(), batches, after_step=self.inner.after_train_step)
            if self.inner.refine(self._latent_stream(batches)):
                self._fit(self._decode_quantized, self.decoder.parameters(), batches, label="decoder fine-tune")
            self.inner.finish_fit()
        self.finish_fit()
        return self

    def init_from_sample(self, sample: torch.Tensor) -> None:
        """Initialise the (neural) inner quantizer on the latents of ``sample``."""
        self.inner.prepare_training(self.encoder(sample))

    def _fit(self, forward: Forward, parameters: Iterable[nn.Parameter], batches: BatchStream, *,
             epochs: int | None = None, label: str = "vqvae", after_step: Callable[[], None] | None = None) -> list[float]:
        """:func:`train` with this model's settings (``epochs`` given: a fixed-length phase, no early stop)."""
        settings = self.settings if epochs is None else replace(self.settings, epochs=epochs, patience=0)
        return train(forward, parameters, batches, settings, dim=self.dim, device=self.torch_device,
                     generator=self.generator, after_step=after_step, label=f"{self.inner.name} {label}")

    def _autoencode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(x)), x.new_zeros(())

    def _decode_quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            latent = self.inner.decode_tensor(self.inner.encode_tensor(self.encoder(x)))
        return self.decoder(latent), x.new_zeros(())

    @torch.no_grad()
    def _latents(self, batch: Any) -> np.ndarray:
        x = torch.from_numpy(as_float_matrix(batch, self.dim, name="batch")).to(self.torch_device)
        return self.encoder(x).cpu().numpy()

    def _latent_stream(self, batches: BatchStream) -> BatchStream:
        """The training stream seen through the (frozen) encoder, for the EM fit of the inner quantizer."""
        return lambda: (self._latents(batch) for batch in batches())
