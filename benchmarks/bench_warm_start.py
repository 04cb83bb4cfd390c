"""Do SIDs survive a refit? A refit with 10% new items, from scratch vs warm-started from the old fit.

MiniLM embeddings of the 3,883 MovieLens item texts (the demo's ``text`` signal, from the embedding
cache), 20% of items held out. The old fit sees 1/1.1 of the training items; the refit sees all of
them (10% new) with another seed, either from scratch or warm-started (``Quantizer.warm_start``) from
the old fit. Reported per quantizer at 24 bits (kmeans: 10): the share of old items whose full SID and
whose first code the refit keeps, and the held-out cosine loss of each refit; then the warm refit
with hysteresis (:func:`sidlib.stability.stable_codes`) at two margins. Appends a section to
``benchmarks/RESULTS.md``.

    python benchmarks/bench_warm_start.py [--cases rq_kmeans,rq_kmeans_b5,kmeans,rq_gmm,dpca,fsq,rq_vae,vae_rq_kmeans]
                                          [--margins 0.02,0.1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import append_section  # noqa: E402

from sidlib.data import movielens  # noqa: E402
from sidlib.data.embed import embed_texts  # noqa: E402
from sidlib.jobs.ingest_demo_data import text_view  # noqa: E402
from sidlib.metrics import cosine_loss  # noqa: E402
from sidlib.quantizers import build  # noqa: E402
from sidlib.stability import stable_codes  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "data" / "cache"
CASES = ("rq_kmeans", "rq_kmeans_b5", "kmeans", "rq_gmm", "dpca", "fsq", "rq_vae", "vae_rq_kmeans")
#: Hysteresis margins tried on the warm refit (:func:`sidlib.stability.stable_codes`).
MARGINS = (0.02, 0.1)


def splits(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(old training items, all training items, held-out items) as embedding matrices."""
    x = embed_texts(text_view(movielens.load_items()), CACHE)
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:int(0.2 * len(x))], np.sort(order[int(0.2 * len(x)):])
    old = np.sort(np.random.default_rng(seed + 1).permutation(train)[:int(round(len(train) / 1.1))])
    return x[old], x[train], x[test]


def one_case(case: str, old_rows: np.ndarray, all_rows: np.ndarray, test: np.ndarray,
             margins: tuple[float, ...] = MARGINS) -> dict[str, float]:
    vae = case.startswith("vae_")
    name = case.removeprefix("vae_").removesuffix("_b5")
    options = {"vae": True} if vae else {}
    if case.endswith("_b5"):
        options["beam_size"] = 5
    bits = 10 if name == "kmeans" else 24
    old = build(name, old_rows.shape[1], bits, seed=0, **options).fit(old_rows)
    before = old.encode(old_rows)
    row: dict[str, float] = {}
    for label, start in (("cold", None), ("warm", old)):
        start_time = time.perf_counter()
        refit = build(name, old_rows.shape[1], bits, seed=1, **options)
        if start is not None:
            refit.warm_start(start)
        refit.fit(all_rows)
        after = refit.encode(old_rows)
        row[f"{label}_sid_kept"] = float(np.mean((after == before).all(1)))
        row[f"{label}_first_kept"] = float(np.mean(after[:, 0] == before[:, 0]))
        row[f"{label}_loss"] = cosine_loss(test, refit.decode(refit.encode(test)))
        row[f"{label}_s"] = time.perf_counter() - start_time
    # hysteresis on the warm refit: old items keep their codes unless the new ones are clearly better
    warm_old_loss = cosine_loss(old_rows, refit.decode(after))
    for margin in margins:
        kept = stable_codes(refit, old_rows, before, margin, new=after)
        row[f"h{margin}_sid_kept"] = float(np.mean((kept == before).all(1)))
        row[f"h{margin}_first_kept"] = float(np.mean(kept[:, 0] == before[:, 0]))
        row[f"h{margin}_old_loss_ratio"] = cosine_loss(old_rows, refit.decode(kept)) / warm_old_loss
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--margins", default=",".join(str(m) for m in MARGINS))
    args = parser.parse_args()
    margins = tuple(float(m) for m in args.margins.split(","))
    old_rows, all_rows, test = splits()
    lines = ["| quantizer | full SID kept: cold / warm | first code kept: cold / warm | held-out loss: cold / warm "
             "| warm / cold loss | fit s: cold / warm |", "|---|---|---|---|---|---|"]
    rows: dict[str, dict[str, float]] = {}
    for case in args.cases.split(","):
        r = rows[case] = one_case(case, old_rows, all_rows, test, margins)
        lines.append(f"| {case} | {r['cold_sid_kept']:.3f} / {r['warm_sid_kept']:.3f} | {r['cold_first_kept']:.3f} / "
                     f"{r['warm_first_kept']:.3f} | {r['cold_loss']:.4f} / {r['warm_loss']:.4f} | "
                     f"{r['warm_loss'] / r['cold_loss']:.3f} | {r['cold_s']:.0f} / {r['warm_s']:.0f} |")
        print(lines[-1], flush=True)
    hysteresis = ["| quantizer | " + " | ".join(f"margin {m}: SID kept / first kept / old items' loss vs warm" for m in margins)
                  + " |", "|---|" + "---|" * len(margins)]
    hysteresis += [f"| {case} | " + " | ".join(f"{r[f'h{m}_sid_kept']:.3f} / {r[f'h{m}_first_kept']:.3f} / "
                                             f"{r[f'h{m}_old_loss_ratio']:.3f}" for m in margins) + " |"
                   for case, r in rows.items()]
    body = (f"{len(old_rows)} old training items, {len(all_rows)} after 10% new ones, {len(test)} held out; "
            "old fit seed 0, refits seed 1.\n\n" + "\n".join(lines)
            + "\n\nThe warm refit with hysteresis (`sidlib.stability.stable_codes`: an old item keeps its codes "
            "unless the refit's codes reconstruct it better by more than the margin):\n\n" + "\n".join(hysteresis))
    append_section("Recurring retrain: SIDs kept by a refit with 10% new items, cold vs warm start (bench_warm_start)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
