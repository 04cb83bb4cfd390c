"""How a quantizer is described, written and rebuilt: the constructor arguments recorded once by the
base class (``config``), the one serializer (a directory and bytes, same payload, older configs
still readable), and :class:`QuantizerSpec` with its one rule for ``vae``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sidlib.config import FitConfig
from sidlib.errors import InvalidInputError
from sidlib.steps.fit import quantizer_spec
from sidlib.quantizers import QuantizerSpec, build, load, registry
from sidlib.quantizers.kmeans import KMeans
from sidlib.quantizers.serialize import CONFIG_FILE, from_bytes, to_bytes
from sidlib.quantizers.vqvae import VQVAE

DIM = 16


def rows(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, DIM))[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, DIM))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


X = rows()


class ShiftedKMeans(KMeans):
    """A subclass with an argument of its own and no config code: decoding adds ``shift``."""

    name = "shifted_kmeans"

    def __init__(self, dim: int, shift: float = 0.0, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(dim, **kwargs)
        self.shift = float(shift)

    def decode_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        return super().decode_tensor(codes) + self.shift


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._CLASSES, ShiftedKMeans.name, f"{__name__}:ShiftedKMeans")


# --------------------------------------------------------------------- config
def test_config_is_the_outermost_constructor_call() -> None:
    q = ShiftedKMeans(DIM, shift=0.5, k=8, device="cpu")
    # its own arguments, defaults filled in, **kwargs flattened; not the arguments KMeans got
    assert q.config == {"dim": DIM, "shift": 0.5, "k": 8, "device": "cpu"}
    assert type(q)(**q.config).config == q.config
    assert KMeans(DIM, k=8).config == {"dim": DIM, "bits": 24, "k": 8, "max_iter": 25, "tol": 1e-4, "seed": 0,
                                       "device": "auto", "encode_batch_size": 65536}


def test_config_holds_json_values() -> None:
    q = VQVAE(DIM, "dpca", 12, latent_dim=8, hidden=(16,), quantizer_params={"groups": np.int64(2)})
    assert q.config["hidden"] == [16] and q.config["quantizer_params"] == {"groups": 2}
    assert type(q.config["quantizer_params"]["groups"]) is int
    assert json.loads(json.dumps(q.config)) == q.config


def test_a_new_argument_round_trips_without_config_code(registered: None, tmp_path: Path) -> None:
    q = ShiftedKMeans(DIM, shift=0.5, k=8, device="cpu").fit(X)
    for again in (load(q.save(tmp_path / "q")), from_bytes(to_bytes(q))):
        assert type(again) is ShiftedKMeans and again.shift == 0.5 and again.config == q.config
        np.testing.assert_array_equal(again.decode(again.encode(X)), q.decode(q.encode(X)))


def test_a_config_that_is_not_json_cannot_be_saved(tmp_path: Path) -> None:
    q = ShiftedKMeans(DIM, shift=torch.tensor(0.5), k=8)
    with pytest.raises(InvalidInputError, match="not all JSON values"):
        q.save(tmp_path / "q")
    with pytest.raises(InvalidInputError, match="not all JSON values"):
        to_bytes(q)


# ------------------------------------------------------------------ serializer
@pytest.mark.parametrize("name, params", [
    ("kmeans", {"k": 16}), ("rq_kmeans", {"beam_size": 2}), ("dpca", {"epochs": 2}),
    ("fsq", {"vae": {"latent_dim": 8, "hidden": [16], "warmup_epochs": 1, "epochs": 2}, "epochs": 2}),
])
def test_directory_and_bytes_give_the_same_quantizer(name: str, params: dict, tmp_path: Path) -> None:
    q = build(name, DIM, 12, device="cpu", **params).fit(X)
    from_dir, from_buffer = load(q.save(tmp_path / name)), from_bytes(to_bytes(q))
    codes = q.encode(X)
    for again in (from_dir, from_buffer):
        assert type(again) is type(q) and again.config == q.config and again.is_fitted
        np.testing.assert_array_equal(again.encode(X), codes)
        assert again.state_dict().keys() == q.state_dict().keys()
        assert all(torch.equal(again.state_dict()[k], v) for k, v in q.state_dict().items())
    assert json.loads((tmp_path / name / CONFIG_FILE).read_text()) == {"name": q.name, "params": q.config}


def test_configs_written_before_the_base_class_recorded_them_still_load(tmp_path: Path) -> None:
    """Hand-kept configs held resolved values and every training setting, ``recon`` included."""
    q = build("dpca", DIM, 12, vae={"latent_dim": 8, "hidden": [16], "warmup_epochs": 1}, epochs=2, device="cpu")
    q.fit(X)
    path = q.save(tmp_path / "q")
    settings = {"epochs": 20, "lr": 2e-3, "batch_size": 256, "recon": "cosine", "patience": 3,
                "min_improvement": 1e-3, "log_every": 5}
    old = {"dim": DIM, "seed": 0, "device": "auto", "encode_batch_size": 65536, **settings, "quantizer": "dpca",
           "bits": 12, "quantizer_params": {"epochs": 2, "device": "cpu"}, "latent_dim": 8, "hidden": [16],
           "warmup_epochs": 1}
    (path / CONFIG_FILE).write_text(json.dumps({"name": "vqvae", "params": old}, indent=2, sort_keys=True))
    np.testing.assert_array_equal(load(path).encode(X), q.encode(X))


# ------------------------------------------------------------------------ spec
@pytest.mark.parametrize("name, vae, inside", [
    ("rq_kmeans", None, False), ("rq_vae", None, True),
    ("rq_kmeans", True, True), ("rq_vae", False, False), ("rq_kmeans", False, False),
    ("rq_kmeans", {}, True), ("rq_kmeans", {"latent_dim": 8}, True),
])
def test_one_vae_rule(name: str, vae: object, inside: bool) -> None:
    spec = QuantizerSpec(name, 12, vae=vae)  # type: ignore[arg-type]
    q = spec.build(DIM)
    assert spec.uses_vae is inside and isinstance(q, VQVAE) is inside
    if inside:
        assert q.inner.name == name
        assert q.config["latent_dim"] == (vae.get("latent_dim", 64) if isinstance(vae, dict) else 64)
    assert spec.fits_by_em is (name == "rq_kmeans" and not inside)


def test_vae_must_be_none_a_bool_or_a_dict() -> None:
    with pytest.raises(InvalidInputError, match="vae must be"):
        QuantizerSpec("rq_kmeans", vae="yes")  # type: ignore[arg-type]


def test_seed_and_device_go_to_the_vae_and_the_quantizer() -> None:
    q = QuantizerSpec("dpca", 12, {"groups": 2}, {"latent_dim": 8, "hidden": [16]}, seed=3, device="cpu").build(DIM)
    assert (q.seed, q.device_preference, q.inner.seed, q.inner.device_preference) == (3, "cpu", 3, "cpu")
    assert q.inner.groups == 2
    with pytest.raises(TypeError, match="seed"):
        QuantizerSpec("rq_kmeans", params={"seed": 1}, seed=3).build(DIM)


def test_spec_dict_round_trip_and_private_copies() -> None:
    params = {"beam_size": 2}
    spec = QuantizerSpec("rq_kmeans", 12, params, {"latent_dim": 8}, seed=1, device="cpu")
    params["beam_size"] = 5
    assert spec.params == {"beam_size": 2}
    assert QuantizerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(InvalidInputError, match="keys"):
        QuantizerSpec.from_dict({"name": "rq_kmeans", "vae_params": {}})


@pytest.mark.parametrize("fit, vae", [
    (FitConfig(quantizer="rq_kmeans"), False),
    (FitConfig(quantizer="rq_kmeans", vae_params={"latent_dim": 8}), False),   # not used: ignored
    (FitConfig(quantizer="rq_vae", vae_params={"latent_dim": 8}), {"latent_dim": 8}),
    (FitConfig(quantizer="rq_kmeans", vae=True), {}),                           # the VQ-VAE's defaults
    (FitConfig(quantizer="rq_vae", vae=False, vae_params={"latent_dim": 8}), False),
])
def test_fit_config_maps_onto_the_rule(fit: FitConfig, vae: object) -> None:
    spec = quantizer_spec(fit)
    assert spec.vae == vae and (spec.name, spec.seed, spec.device) == (fit.quantizer, fit.seed, fit.device)
    assert isinstance(spec.build(DIM), VQVAE) is (vae is not False)
