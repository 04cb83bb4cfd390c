"""What to build, as one value: :class:`QuantizerSpec`.

``sidlib.quantizers.build``, the fit job (from ``FitConfig``) and the Spark tasks (which receive
:meth:`QuantizerSpec.to_dict` over the wire) all build through it, so the rule for whether a
quantizer runs inside the VQ-VAE is written once, here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from sidlib.errors import InvalidInputError
from sidlib.quantizers.base import EMQuantizer, Quantizer
from sidlib.quantizers.registry import quantizer_class


@dataclass(frozen=True)
class QuantizerSpec:
    """The registered quantizer ``name`` spending about ``bits`` bits, built with constructor
    ``params``, on the raw embedding or inside the shared VQ-VAE.

    ``vae``, one rule for every caller:

    * ``None``: the quantizer's own default (``default_vae``): only ``rq_vae`` runs inside the VQ-VAE,
      with the VQ-VAE's default parameters;
    * ``False``: on the raw embedding;
    * ``True``, or a dict of VQ-VAE parameters (``{"latent_dim": 32}``): inside the VQ-VAE. An empty
      dict means no parameters changed, i.e. the same as ``True``: a dict says *how*, never *whether*.

    ``seed`` and ``device``, when set, go to the VQ-VAE and the quantizer alike (``params`` and
    ``vae`` must not repeat them for the quantizer); ``None`` leaves the constructors' defaults.
    """

    name: str
    bits: float = 24
    params: Mapping[str, Any] = field(default_factory=dict)
    vae: bool | Mapping[str, Any] | None = None
    seed: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if not (self.vae is None or isinstance(self.vae, (bool, Mapping))):
            raise InvalidInputError(f"vae must be None, true, false or a dict of VQ-VAE parameters, got {self.vae!r}")
        if not isinstance(self.params, Mapping):
            raise InvalidInputError(f"params must be a dict of constructor parameters, got {self.params!r}")
        # private copies: a frozen spec must not change when the caller's dicts do
        object.__setattr__(self, "params", dict(self.params))
        if isinstance(self.vae, Mapping):
            object.__setattr__(self, "vae", dict(self.vae))

    @property
    def uses_vae(self) -> bool:
        """Whether :meth:`build` wraps the quantizer in the VQ-VAE (the rule in the class docstring)."""
        if self.vae is None:
            return bool(getattr(quantizer_class(self.name), "default_vae", False))
        return self.vae is not False

    @property
    def fits_by_em(self) -> bool:
        """Whether :meth:`build` gives an :class:`~sidlib.quantizers.base.EMQuantizer` (fit from additive
        statistics, so distributable): an EM quantizer on the raw embedding. Inside the VQ-VAE it is
        part of a model trained by gradient."""
        return issubclass(quantizer_class(self.name), EMQuantizer) and not self.uses_vae

    def build(self, dim: int) -> Quantizer:
        """An unfitted quantizer for ``dim``-dimensional rows (each class's doc says how ``bits`` maps
        to its layout). Constructor errors propagate as the constructors raise them."""
        common = {key: value for key, value in (("seed", self.seed), ("device", self.device)) if value is not None}
        if not self.uses_vae:
            return quantizer_class(self.name)(dim=dim, bits=self.bits, **common, **self.params)
        from sidlib.quantizers.vqvae import VQVAE

        vae_params = {**common, **(self.vae if isinstance(self.vae, Mapping) else {})}
        return VQVAE(dim=dim, quantizer=self.name, bits=self.bits, quantizer_params=dict(**common, **self.params),
                     **vae_params)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what Spark tasks receive); :meth:`from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QuantizerSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or "name" not in data:
            raise InvalidInputError(f"a quantizer spec has keys {sorted(names)} (name required), got {sorted(data)}")
        return cls(**data)
