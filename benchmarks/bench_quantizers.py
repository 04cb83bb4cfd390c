"""Every sidlib quantizer against FAISS on the same real data, in one process (issue 3's table).

Data: MiniLM embeddings of MovieLens-1M item texts + Wikidata film texts, 20% of items held out.
Reported on held-out items at ~24 bits: cosine loss, min per-level utilization, unique SIDs,
Recall@20/50/100 of SIDE codes and of reconstructions vs raw top-20 kNN, fit seconds, encode items/s.

    python benchmarks/bench_quantizers.py [--only rq_kmeans_b1,faiss_rq_b1] [--no-write] [--prefixes]

``--prefixes`` adds the held-out loss of each SID prefix (first 1, 2, ... codes) for the residual
quantizers (``prefix_losses``: the joint refinement's trade-off).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import minilm_movies  # noqa: E402
from report import markdown_table, publish  # noqa: E402

from sidlib.metrics import cosine_loss, recall_at_k, unique_sid_rate, utilization  # noqa: E402
from sidlib.quantizers import build  # noqa: E402
from sidlib.sid import centre_codes  # noqa: E402

BITS = 24
VAE_EPOCHS = 60


class FaissCodec:
    """FAISS additive/product quantizers (3 codebooks x 8 bits: one byte per code) behind the same
    fit/encode/decode trio as sidlib's, codes as int64 ``[n, 3]``."""

    cardinalities = [256, 256, 256]

    def __init__(self, make: Callable[[int], Any], dim: int):
        self.q = make(dim)

    def fit(self, x: np.ndarray) -> "FaissCodec":
        self.q.train(x)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.q.compute_codes(x).astype(np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.q.decode(codes.astype(np.uint8))


def faiss_rq(beam: int) -> Callable[[int], Any]:
    def make(d: int) -> Any:
        rq = faiss.ResidualQuantizer(d, 3, 8)
        rq.max_beam_size = beam
        return rq
    return make


def methods(dim: int, vae_epochs: int = VAE_EPOCHS) -> dict[str, Callable[[], Any]]:
    """Every compared method at ~24 bits, by name (``vae_epochs``: training length of the VQ-VAEs)."""
    vae = {"epochs": vae_epochs}
    return {
        "faiss_rq_b1": lambda: FaissCodec(faiss_rq(1), dim),
        "faiss_rq_b5": lambda: FaissCodec(faiss_rq(5), dim),
        "faiss_lsq": lambda: FaissCodec(lambda d: faiss.LocalSearchQuantizer(d, 3, 8), dim),
        "faiss_pq": lambda: FaissCodec(lambda d: faiss.ProductQuantizer(d, 3, 8), dim),
        "rq_kmeans_b1": lambda: build("rq_kmeans", dim, BITS, beam_size=1),
        "rq_kmeans_b5": lambda: build("rq_kmeans", dim, BITS, beam_size=5),
        "rq_kmeans_b8": lambda: build("rq_kmeans", dim, BITS, beam_size=8),
        "rq_kmeans_b1_unrefined": lambda: build("rq_kmeans", dim, BITS, beam_size=1, refine_rounds=0),
        "rq_kmeans_b5_unrefined": lambda: build("rq_kmeans", dim, BITS, beam_size=5, refine_rounds=0),
        "rq_gmm": lambda: build("rq_gmm", dim, BITS),
        "rq_gmm_refined": lambda: build("rq_gmm", dim, BITS, refine_rounds=10),
        "dpca": lambda: build("dpca", dim, BITS),
        "structured": lambda: build("structured", dim, BITS),
        "fsq": lambda: build("fsq", dim, BITS),
        "dpca_vae": lambda: build("dpca", dim, BITS, vae=vae),
        "fsq_vae": lambda: build("fsq", dim, BITS, vae=vae),
        "rq_vae": lambda: build("rq_vae", dim, BITS, vae=vae),
        "rq_vae_unrefined": lambda: build("rq_vae", dim, BITS, vae=vae, refine_iterations=0),
        "rq_kmeans_vae": lambda: build("rq_kmeans", dim, BITS, vae=vae),
        "kmeans_4096": lambda: build("kmeans", dim, k=4096),
    }


def encode_rate(q: Any, x: np.ndarray, min_seconds: float = 1.0) -> float:
    """Items/s of ``encode`` over ``x``, repeated until ``min_seconds`` of work was timed."""
    q.encode(x[:256])  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        q.encode(x)
        n += len(x)
    return n / (time.perf_counter() - start)


def evaluate(name: str, q: Any, train: np.ndarray, test: np.ndarray, prefix_losses: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    q.fit(train)
    fit_s = time.perf_counter() - start
    codes = q.encode(test)
    x_hat = q.decode(codes)
    cards = q.cardinalities
    side = recall_at_k(test, centre_codes(codes, cards), (20, 50, 100), metric="euclidean")
    recon = recall_at_k(test, x_hat, (20, 50, 100), metric="cosine")
    rate = encode_rate(q, train)
    prefixes = {f"loss_prefix{m}": cosine_loss(test, q.prefix(m).decode(codes[:, :m]))
                for m in range(1, len(cards))} if hasattr(q, "prefix") and prefix_losses else {}
    return {
        "method": name, "bits": round(float(sum(np.log2(cards))), 2), "cosine_loss": cosine_loss(test, x_hat),
        "util_min": float(utilization(codes, cards).min()), "util_min_train": float(utilization(q.encode(train), cards).min()),
        "unique_sids": unique_sid_rate(codes),
        "side_R@20": side[20], "side_R@50": side[50], "side_R@100": side[100],
        "recon_R@20": recon[20], "recon_R@100": recon[100],
        "fit_s": round(fit_s, 1), "encode_items_per_s": rate, "per_core": rate / torch.get_num_threads(),
        **prefixes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated method names")
    parser.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    parser.add_argument("--prefixes", action="store_true", help="also the held-out loss of each SID prefix")
    args = parser.parse_args()
    torch.manual_seed(0)
    faiss.omp_set_num_threads(torch.get_num_threads())
    train, test, _ = minilm_movies()
    chosen = methods(train.shape[1])
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    rows = []
    for name, make in chosen.items():
        rows.append(evaluate(name, make(), train, test, args.prefixes))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = markdown_table(rows, list(dict.fromkeys(key for row in rows for key in row)))
    body = (f"{len(train)} train / {len(test)} held-out MiniLM (384-d) movie embeddings; metrics on held-out "
            f"items; util_min = smallest per-position code utilization; R@k = recall of raw top-20 kNN "
            f"(1,000 queries); encode rate over the train set with {torch.get_num_threads()} threads.\n\n{table}")
    publish("Quantizers vs FAISS at 24 bits (issue 3)", body, write=not args.no_write)


if __name__ == "__main__":
    main()
