"""A quantizer on a learned latent, composed of four parts: an encoder (rows to a small latent), an
inner quantizer (any registered one, on the latent), a decoder (latent back to rows) and an
objective (how the decoder's output is scored against the rows). The VQ-VAE
(:mod:`~sidlib.quantizers.vqvae`: MLPs, reconstruction loss) and the fusion model
(:mod:`~sidlib.quantizers.fusion`: per-signal networks and losses) are the two assemblies.

Training is the same for both. A neural inner quantizer (dpca, structured, fsq, rq_vae) trains
jointly with the networks through its straight-through :meth:`~sidlib.quantizers.base.Quantizer.quantize`,
after a short autoencoder warm-up and an initialisation of the quantizer on the warmed-up latents;
if the inner quantizer then refines its codebooks on the final latents (rq_vae does), the decoder is
fine-tuned on the new codewords with everything else frozen. An EM inner quantizer (kmeans,
rq_kmeans, rq_gmm) cannot take gradients, so it trains in stages: autoencoder warm-up, EM on the
encoder's latents, then the decoder fine-tuned on quantized latents with the encoder frozen. Every
phase is scored by the same objective. The inner quantizer is used through its public methods only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import BatchStream, EMQuantizer, Quantizer, QuantizeOutput
from sidlib.quantizers.labels import LabelSymmetry, Relabel
from sidlib.quantizers.registry import quantizer_class
from sidlib.quantizers.residual import PrefixView
from sidlib.quantizers.training import Forward, NeuralQuantizer, Objective, train
from sidlib.validation import as_float_matrix


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers through ``sizes``; hidden layers get LayerNorm and GELU."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers += [nn.LayerNorm(n_out), nn.GELU()]
    return nn.Sequential(*layers)


def check_sizes(latent_dim: int, hidden: Sequence[int], warmup_epochs: int) -> None:
    """The sizes the networks are built from, refused before anything is built."""
    if latent_dim < 1 or warmup_epochs < 0 or any(h < 1 for h in hidden):
        raise InvalidInputError(f"need latent_dim >= 1, hidden sizes >= 1, warmup_epochs >= 0; got "
                                f"{latent_dim}, {list(hidden)}, {warmup_epochs}")


def inner_quantizer(model: str, name: str, latent_dim: int, bits: float, params: Mapping[str, Any] | None, *,
                    seed: int, device: str | None) -> Quantizer:
    """The quantizer ``name`` of a latent model ``model`` on its ``latent_dim`` latent, with the
    model's seed and device unless ``params`` sets them."""
    cls = quantizer_class(name)
    if issubclass(cls, LatentQuantizer):
        raise InvalidInputError(f"the {model} model already is a VQ-VAE: its quantizer cannot be {name!r}")
    return cls(dim=latent_dim, bits=bits, **{"seed": seed, "device": device, **(params or {})})


class LatentQuantizer(NeuralQuantizer):
    """``encoder`` -> ``inner`` -> ``decoder``, trained on ``objective`` (module docstring). Codes and
    cardinalities are the inner quantizer's.

    ``warmup_epochs`` of plain autoencoding come first; the :class:`~sidlib.quantizers.training.TrainSettings`
    fields in ``training`` then govern the quantized phase (and the decoder fine-tuning). The inner
    quantizer's own training settings are not used. Subclasses build the parts from their
    (JSON) constructor arguments and may map decoder outputs to the output layout (:meth:`activate`).
    """

    def __init__(
        self, dim: int, *, encoder: nn.Module, decoder: nn.Module, inner: Quantizer, objective: Objective,
        warmup_epochs: int, seed: int, device: str | None, encode_batch_size: int, **training: Any,
    ):
        if "recon" in training:
            raise InvalidInputError(f"{self.name}: 'recon' does not apply, the objective comes with the model")
        super().__init__(dim, seed=seed, device=device, encode_batch_size=encode_batch_size, **training)
        if not isinstance(inner, (NeuralQuantizer, EMQuantizer)):
            raise InvalidInputError(f"quantizer {inner.name!r} is neither gradient- nor EM-trained")
        self.warmup_epochs = int(warmup_epochs)
        self.encoder, self.decoder, self.inner = encoder, decoder, inner
        self.objective = objective  # the model's, in place of a plain quantizer's reconstruction

    @property
    def cardinalities(self) -> list[int]:
        return self.inner.cardinalities

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Decoder outputs (what the objective scores) to the output layout; the identity here."""
        return raw

    def label_symmetries(self) -> list[LabelSymmetry]:
        """The codes are the inner quantizer's (of the latent): so are their relabellings."""
        return self.inner.label_symmetries()

    def relabel(self, maps: Sequence[Relabel]) -> "LatentQuantizer":
        self.inner.relabel(maps)
        return self

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_tensor(self.encoder(x))

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return self.activate(self.decoder(self.inner.decode_tensor(codes)))

    def quantize(self, z: torch.Tensor) -> QuantizeOutput:
        """Encoder, the inner quantizer's straight-through pass, decoder: ``z_q`` is the reconstruction."""
        raw, out = self._quantized(z)
        return replace(out, z_q=self.activate(raw))

    def training_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw decoder outputs (before :meth:`activate`: label logits, for stable cross-entropies)
        and the inner quantizer's loss."""
        raw, out = self._quantized(x)
        return raw, out.loss

    def _quantized(self, z: torch.Tensor) -> tuple[torch.Tensor, QuantizeOutput]:
        out = self.inner.quantize(self.encoder(z))
        return self.decoder(out.z_q), out

    def prefix(self, n_levels: int) -> PrefixView:
        """The first ``n_levels`` levels of a residual inner quantizer (one with ``prefix_codes``),
        decoded through the decoder."""
        if not hasattr(self.inner, "prefix_codes"):
            raise InvalidInputError(f"the inner quantizer {self.inner.name!r} has no level prefixes")
        return PrefixView(self, self.inner.prefix_codes(n_levels))

    def extra_metrics(self) -> dict[str, float]:
        return self.inner.extra_metrics()

    # ---------------------------------------------------------------- training
    def fit_stream(self, batches: BatchStream) -> "LatentQuantizer":
        self.to_preferred_device().train()
        sample = self.sample_rows(batches)
        self.generator.manual_seed(self.seed)
        if not self.warm:  # a warm start keeps the encoder, decoder and codebooks it loaded (with an EM
            # inner model the encoder is trained only here, so warm refits keep the previous encoder)
            self._fit(self._autoencode, self.parameters(), batches, epochs=self.warmup_epochs, label="warm-up")
        if isinstance(self.inner, EMQuantizer):
            if self.warm:
                self.inner.warm_start(self.inner)
            self.inner.fit_stream(self._latent_stream(batches))
            self.history = self._fit(self._decode_quantized, self.decoder.parameters(), batches)
        else:
            self.prepare_training(sample)
            self.history = self._fit(self.training_forward, self.parameters(), batches,
                                     after_step=self.inner.after_train_step)
            if self.inner.refine(self._latent_stream(batches)):
                self._fit(self._decode_quantized, self.decoder.parameters(), batches, label="decoder fine-tune")
            self.inner.finish_fit()
        self.finish_fit()
        return self

    def init_from_sample(self, sample: torch.Tensor) -> None:
        """Initialise the (neural) inner quantizer on the latents of ``sample``."""
        self.inner.prepare_training(self.encoder(sample))

    def begin_training(self) -> None:
        """After a warm start the inner quantizer was not prepared by :meth:`init_from_sample`: set up
        its training tracking here (dead codes of an RQ-VAE inner)."""
        if self.warm:
            self.inner.begin_training()  # type: ignore[union-attr]

    def _fit(self, forward: Forward, parameters: Iterable[nn.Parameter], batches: BatchStream, *,
             epochs: int | None = None, label: str | None = None,
             after_step: Callable[[], None] | None = None) -> list[float]:
        """:func:`train` of ``forward`` on the objective with this model's settings (``epochs`` given:
        a fixed-length phase, no early stop)."""
        settings = self.settings if epochs is None else replace(self.settings, epochs=epochs, patience=0)
        return train(forward, self.objective, parameters, batches, settings, dim=self.dim, device=self.torch_device,
                     generator=self.generator, after_step=after_step,
                     label=f"{self.inner.name} {label or self.name}")

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
