"""The ranker's item representations by name (``id``, ``sid:<n>``, ``side``, ``raw``) and what each
costs per item occurrence. Torch-free, so the config can check ``evaluate.variants`` when it is read;
the modules that build them are in :mod:`sidlib.ranker.features`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sidlib.errors import ConfigError

VARIANT_KINDS = ("id", "sid", "side", "raw")
#: The variant every other is compared with (item-id embeddings only).
BASELINE = "id"
#: Bytes of one int64 id (item id, packed SID, n-gram id) and of one float32.
ID_BYTES, FLOAT_BYTES = 8, 4


@dataclass(frozen=True)
class Variant:
    """One item representation: ``kind`` plus ``n`` (number of prefix n-grams, ``sid`` only)."""

    kind: str
    n: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """``id``, ``side``, ``raw`` or ``sid:<n>`` (``sid`` alone means ``sid:3``)."""
        kind, _, n = str(text).partition(":")
        if kind not in VARIANT_KINDS:
            raise ConfigError(f"ranker variant must be one of {', '.join(VARIANT_KINDS)} (sid:<n>), got {text!r}")
        if kind != "sid":
            if n:
                raise ConfigError(f"only sid variants take an n-gram count, got {text!r}")
            return cls(kind)
        if n and (not n.isdigit() or int(n) < 1):
            raise ConfigError(f"sid variant must look like sid:<n> with n >= 1, got {text!r}")
        return cls(kind, int(n or 3))

    @property
    def name(self) -> str:
        return f"sid:{self.n}" if self.kind == "sid" else self.kind

    def extra_bytes(self, raw_dim: int) -> int:
        """Bytes this variant adds per item occurrence on top of the item id (logged/fetched per event)."""
        return {"id": 0, "sid": ID_BYTES * (self.n or 0), "side": ID_BYTES, "raw": FLOAT_BYTES * raw_dim}[self.kind]

    def cost_bytes(self, raw_dim: int) -> int:
        """Feature cost per item occurrence: the item id (8 B) for the baseline, else what is added."""
        return ID_BYTES if self.kind == "id" else self.extra_bytes(raw_dim)


def parse_variants(names: Sequence[str]) -> list[Variant]:
    """The variants named, which must include the :data:`BASELINE` and name each variant once."""
    variants = [Variant.parse(v) for v in names]
    if BASELINE not in [v.name for v in variants]:
        raise ConfigError(f"the variants must include the {BASELINE!r} baseline, got {list(names)}")
    if len({v.name for v in variants}) != len(variants):
        raise ConfigError(f"the variants name one twice: {list(names)}")
    return variants
