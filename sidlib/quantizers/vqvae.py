"""The shared VQ-VAE: an MLP encoder to a small latent, any registered quantizer on the latent, an
MLP decoder back to the embedding, trained to reconstruct it (:class:`~sidlib.quantizers.latent.LatentQuantizer`
says how each kind of inner quantizer trains)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sidlib.quantizers.base import check_dim
from sidlib.quantizers.latent import LatentQuantizer, check_sizes, inner_quantizer, mlp
from sidlib.quantizers.training import Reconstruction, seeded


class VQVAE(LatentQuantizer):
    """Encoder ``dim -> hidden -> latent_dim``, inner quantizer ``quantizer`` built as
    ``quantizer_class(quantizer)(dim=latent_dim, bits=bits, seed=seed, device=device, **quantizer_params)``,
    decoder ``latent_dim -> reversed(hidden) -> dim``, objective the ``recon`` reconstruction loss.
    The default inner quantizer is ``rq_vae``, so ``build("vqvae", dim)`` is the classic RQ-VAE.
    ``warmup_epochs`` and ``training`` (the :class:`~sidlib.quantizers.training.TrainSettings`
    fields) are as for :class:`~sidlib.quantizers.latent.LatentQuantizer`.
    """

    name = "vqvae"

    def __init__(
        self, dim: int, quantizer: str = "rq_vae", bits: float = 24, quantizer_params: Mapping[str, Any] | None = None,
        *, latent_dim: int = 64, hidden: Sequence[int] = (512,), warmup_epochs: int = 5, recon: str = "cosine",
        seed: int = 0, device: str | None = "auto", encode_batch_size: int = 65536, **training: Any,
    ):
        check_dim(dim)
        check_sizes(latent_dim, hidden, warmup_epochs)
        with seeded(int(seed)):
            encoder = mlp([dim, *hidden, latent_dim])
            decoder = mlp([latent_dim, *reversed(hidden), dim])
            inner = inner_quantizer(self.name, quantizer, latent_dim, bits, quantizer_params, seed=seed, device=device)
        super().__init__(dim, encoder=encoder, decoder=decoder, inner=inner, objective=Reconstruction(recon),
                         warmup_epochs=warmup_epochs, seed=seed, device=device, encode_batch_size=encode_batch_size,
                         **training)
