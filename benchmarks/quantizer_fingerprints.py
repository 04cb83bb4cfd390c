"""Fingerprints of what every quantizer learns on fixed synthetic data, to show a refactor of
``sidlib.quantizers`` changed no behaviour (pure numpy/torch: no Spark, no demo data, ~1-2 minutes).

Each case is built, fit on the same seeded ``3000 x 64`` clustered unit rows (short training), then
hashed (SHA-256): the codes of the rows, the decoded reconstruction (rounded to 1e-5), and the codes
again after a ``save``/``load`` round trip and after a bytes round trip. ``--save FILE`` also keeps
each fitted case as saved then under ``FILE``'s ``.artifacts`` sibling directory, and ``--compare
FILE`` loads those too: quantizers saved before a change must still load and give the same codes.

    python benchmarks/quantizer_fingerprints.py --save /tmp/qfp_before.json
    python benchmarks/quantizer_fingerprints.py --compare /tmp/qfp_before.json   # prints "identical"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sidlib.quantizers import NAMES, Quantizer, build, load
from sidlib.quantizers.fusion import fusion_input
from sidlib.quantizers.serialize import from_bytes, to_bytes

ROWS, DIM, CLUSTERS = 3000, 64, 40
#: Short training everywhere: the point is to exercise every code path, not to train well.
NEURAL = {"epochs": 3, "batch_size": 256, "patience": 0, "device": "cpu"}
VAE = {"latent_dim": 16, "hidden": [64], "warmup_epochs": 1, **NEURAL}
EM = {"device": "cpu"}
SIGNALS = [{"name": "text", "dim": 48, "kind": "embedding"}, {"name": "genres", "dim": 12, "kind": "multilabel"}]
FUSION = {"signals": SIGNALS, "latent_dim": 16, "hidden": [64], "signal_hidden": 32, "warmup_epochs": 1, **NEURAL}


def clustered_rows(seed: int = 0) -> np.ndarray:
    """Unit rows around ``CLUSTERS`` random centres (float32, fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM))
    X = centres[rng.integers(0, CLUSTERS, ROWS)] + 0.5 * rng.normal(size=(ROWS, DIM))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def fused_rows(seed: int = 0) -> np.ndarray:
    """Two signals: a 48-d embedding every row has, 12-d multi-hot labels one row in five lacks."""
    X = clustered_rows(seed)[:, :48]
    rng = np.random.default_rng(seed + 1)
    labels = (rng.random((ROWS, 12)) < 0.2).astype(np.float32)
    genres = [None if i % 5 == 0 else labels[i] for i in range(ROWS)]
    return fusion_input(SIGNALS, {"text": X / np.linalg.norm(X, axis=1, keepdims=True), "genres": genres})


def _raw(name: str) -> dict[str, Any]:
    return EM if name in ("kmeans", "rq_kmeans", "rq_gmm") else NEURAL


#: case -> (builder, fused input?). Every registered name on the raw embedding, rq_kmeans with a
#: beam, kmeans at 10 bits, dpca on the squared-error loss, rq_vae at its default (inside the
#: VQ-VAE), three quantizers inside the VQ-VAE (fsq builds layers of its own, and trains on the
#: squared-error loss there), and the fusion quantizer on two signals with neural and EM inner quantizers.
CASES: dict[str, tuple[Callable[[], Quantizer], bool]] = {
    **{name: ((lambda name=name: build(name, DIM, 10 if name == "kmeans" else 24, vae=False, **_raw(name))), False)
       for name in NAMES},
    "rq_kmeans_beam5": (lambda: build("rq_kmeans", DIM, 24, vae=False, beam_size=5, **EM), False),
    "dpca_mse": (lambda: build("dpca", DIM, 24, vae=False, recon="mse", **NEURAL), False),
    "rq_vae_default": (lambda: build("rq_vae", DIM, 24, vae=VAE, **NEURAL), False),
    "vae_rq_kmeans": (lambda: build("rq_kmeans", DIM, 24, vae=VAE, **EM), False),
    "vae_dpca": (lambda: build("dpca", DIM, 24, vae=VAE, **NEURAL), False),
    "vae_fsq_mse": (lambda: build("fsq", DIM, 24, vae={**VAE, "recon": "mse"}, **NEURAL), False),
    "fusion": (lambda: build("fusion", 48 + 12 + 2, 24, **FUSION), True),
    "fusion_rq_kmeans": (lambda: build("fusion", 48 + 12 + 2, 24, quantizer="rq_kmeans", **FUSION), True),
    "fusion_fsq": (lambda: build("fusion", 48 + 12 + 2, 24, quantizer="fsq", **FUSION), True),
}


def digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def reconstruction_digest(X_hat: np.ndarray) -> str:
    """Hash of the reconstruction rounded to 1e-5 (``+ 0.0`` folds -0.0 into 0.0)."""
    return digest(np.round(X_hat.astype(np.float64), 5) + 0.0)


def fingerprint(case: str, X: np.ndarray, keep: Path | None) -> dict[str, Any]:
    """Fit one case and hash what it does; with ``keep``, save it there for a later ``--compare``."""
    start = time.perf_counter()
    q = CASES[case][0]().fit(X)
    codes = q.encode(X)
    with tempfile.TemporaryDirectory() as tmp:
        reloaded = load(q.save(Path(tmp) / case))
    found = {
        "cardinalities": list(q.cardinalities),
        "codes": digest(codes),
        "decoded": reconstruction_digest(q.decode(codes)),
        "codes_after_save_load": digest(reloaded.encode(X)),
        "decoded_after_save_load": reconstruction_digest(reloaded.decode(codes)),
        "codes_after_bytes": digest(from_bytes(to_bytes(q)).encode(X)),
    }
    if keep is not None:
        q.save(keep / case / "quantizer")
        (keep / case / "quantizer.bytes").write_bytes(to_bytes(q))
    print(f"{case:18s} {found['codes'][:12]} {found['decoded'][:12]}  ({time.perf_counter() - start:.1f}s)", flush=True)
    return found


def kept_codes(case: str, X: np.ndarray, kept: Path) -> dict[str, str]:
    """Codes of ``X`` from the quantizer of ``case`` saved by an earlier ``--save`` (both forms)."""
    return {"codes_from_saved_dir": digest(load(kept / case / "quantizer").encode(X)),
            "codes_from_saved_bytes": digest(from_bytes((kept / case / "quantizer.bytes").read_bytes()).encode(X))}


def artifacts_dir(file: str) -> Path:
    return Path(file).with_suffix(".artifacts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--save", help="write the fingerprints (and the fitted quantizers) here")
    parser.add_argument("--compare", help="compare with fingerprints written by --save; exit 1 on any difference")
    args = parser.parse_args()
    keep = artifacts_dir(args.save) if args.save else None
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
    plain, fused = clustered_rows(), fused_rows()
    found = {case: fingerprint(case, fused if CASES[case][1] else plain, keep) for case in args.cases}
    if args.save:
        Path(args.save).write_text(json.dumps(found, indent=2, sort_keys=True))
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    kept = artifacts_dir(args.compare)
    differ = []
    for case, now in found.items():
        old = before.get(case)
        changed = [key for key in sorted(set(now) | set(old or {})) if (old or {}).get(key) != now.get(key)]
        if old is not None and kept.is_dir():
            from_kept = kept_codes(case, fused if CASES[case][1] else plain, kept)
            changed += [key for key, value in from_kept.items() if value != old["codes"]]
        if changed:
            differ.append(f"{case} ({', '.join(changed)})")
    print("identical" if not differ else f"DIFFERENT: {'; '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
