"""Long user histories (issue 20): build_sequences and the reader, compact vs materialized layout.

    python benchmarks/bench_histories.py movielens [--lengths 50,1000,10000]
    python benchmarks/bench_histories.py synthetic [--events 1000000,10000000]
    python benchmarks/bench_histories.py ranker [--lengths 50,1000]   (after ``movielens``)

``movielens``: MovieLens-1M's 1,000,209 events with a synthetic 3 x 256 SID per item (the layout does not
care what the codes mean). build_sequences with the materialized layout at history length 50 (the
baseline) and the compact layout (its cost does not depend on the length, chosen at read time), then
export_training_data, then the reader over the train split at each length, in a subprocess pinned to
one core (impressions/s per core into torch tensors). ``synthetic``: power-law events (some users with
10^5 events) through the compact build, for its time and peak memory against the event count.
``ranker``: the evaluation's ranker (``side`` variant) trained from the compact tables ``movielens``
wrote, histories assembled per batch, at each length: seconds per step, split into assembling the
batch and the model's forward and backward pass (the PMA block's cost grows with the length).
Jobs run as subprocesses through their command line; peak RSS is the whole process tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import MB, csv_ints, ensure_events, run_job  # noqa: E402
from report import markdown_table, publish  # noqa: E402

CARDINALITIES = [256, 256, 256]


def write_item_sids(path: Path, item_ids: np.ndarray) -> None:
    """One SID per item (signal ``text``, version 1): random codes, packed and prefix n-grams by sidlib."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from sidlib import sid
    from sidlib.spark.arrow_lists import list_column

    codes = np.random.default_rng(0).integers(0, 256, (len(item_ids), 3)).astype(np.int32)
    table = pa.table({
        "item_id": pa.array(item_ids.astype(np.int64)), "signal": pa.array(["text"] * len(item_ids)),
        "sid_version": pa.array(np.ones(len(item_ids), np.int64)), "codes": list_column(codes),
        "sid": pa.array(sid.pack(codes, CARDINALITIES).astype(np.int64)),
        "ngrams": list_column(sid.prefix_ngrams(codes, CARDINALITIES).astype(np.int64)),
    })
    write_deltalake(str(path), table, mode="error")


def ensure_movielens(tables: Path) -> None:
    from deltalake import write_deltalake

    from sidlib.data.movielens import load_events, load_items

    if not (tables / "events" / "_delta_log").is_dir():
        items = load_items()
        write_deltalake(str(tables / "events"), load_events(items), mode="error")
        write_item_sids(tables / "item_sids", items["item_id"].to_numpy())


def stored_mb(path: Path) -> float:
    """The data files of the table's current snapshot (an overwrite leaves the old ones for time travel)."""
    from deltalake import DeltaTable

    return sum(Path(f).stat().st_size for f in DeltaTable(str(path)).file_uris()) / MB


def read_rate(location: Path, histories: Path | None, length: int, batches: int) -> dict[str, Any]:
    """Impressions/s of the reader (one core, one reader thread) over its first ``batches`` batches of
    1024, from opening the table on."""
    code = (
        "import json, os, sys, time, torch\n"
        "os.sched_setaffinity(0, {0}); torch.set_num_threads(1)\n"
        "from sidlib.reader import make_dataloader\n"
        "loc, hist, n, batches = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])\n"
        "kw = dict(histories=hist, history_length=n) if hist else {}\n"
        "start, rows = time.perf_counter(), 0  # opening the files and a bucket's histories included\n"
        "loader = make_dataloader(loc, split='train', batch_size=1024, workers_count=1, **kw)\n"
        "for i, b in enumerate(loader):\n"
        "    rows += len(b['item_id'])\n"
        "    if i + 1 == batches: break\n"
        "print(json.dumps({'rows': rows, 'seconds': time.perf_counter() - start,\n"
        "                  'width': int(b['hist_item_ids'].shape[1])}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(location), str(histories or ""), str(length), str(batches)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"impressions_per_s_per_core": r["rows"] / r["seconds"], "history_width": r["width"]}


def movielens(args: argparse.Namespace) -> None:
    tables = Path(args.work) / "ml1m"
    ensure_movielens(tables)
    base = [f"tables.root={tables}", "sequences.signal=text", "sequences.sid_version=1"]
    rows = []
    for layout in ("materialized", "compact"):
        built = run_job("build_sequences", [*base, f"sequences.layout={layout}", "sequences.history_length=50"])
        export = run_job("export_training_data", [*base, f"sequences.layout={layout}"])
        names = ["sequences"] if layout == "materialized" else ["user_histories", "impressions"]
        out = "ranker_training" if layout == "materialized" else "ranker_impressions"
        lengths = [50] if layout == "materialized" else csv_ints(args.lengths)
        for n in lengths:
            rate = read_rate(tables / out, None if layout == "materialized" else tables / "user_histories", n,
                             args.batches)
            rows.append({"layout": layout, "history_length": n, "build_s": built["job_seconds"],
                         "build_wall_s": built["wall_s"],
                         "build_peak_rss_mb": round(built["peak_rss_mb"]),
                         "stored_mb": round(sum(stored_mb(tables / t) for t in names), 1),
                         "export_s": export["job_seconds"], "export_peak_rss_mb": round(export["peak_rss_mb"]),
                         "export_mb": round(stored_mb(tables / out), 1), **rate})
            print(rows[-1], flush=True)
    body = ("MovieLens-1M (1,000,209 events, 6,040 users) on the embedded engine, 2 cores, synthetic 3 x 256 SIDs. "
            "build_s / build_peak_rss_mb: build_sequences (whole process tree); stored_mb: the tables it writes "
            "(data files); export_*: export_training_data and its table. The reader: the train split in batches "
            f"of 1024, the first {args.batches} batches from opening the table (files, the bucket's histories), one core, "
            "one reader thread, all default columns into torch tensors. "
            "The compact build does not depend on the history length (one build serves every length).\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Long histories: compact vs materialized layout on MovieLens-1M (bench_histories)", body,
            write=not args.no_write)


def synthetic(args: argparse.Namespace) -> None:
    tables = Path(args.work) / "synthetic"
    if not (tables / "item_sids" / "_delta_log").is_dir():
        write_item_sids(tables / "item_sids", np.arange(1, 100_001))
    rows = []
    for n in csv_ints(args.events):
        activity = ensure_events(tables / f"events_{n}", n, n_users=100_000, n_items=100_000)
        built = run_job("build_sequences", [f"tables.root={tables}", f"tables.events=events_{n}",
                                            f"tables.user_histories=user_histories_{n}",
                                            f"tables.impressions=impressions_{n}", "sequences.layout=compact",
                                            "sequences.signal=text", "sequences.sid_version=1"])
        rows.append({**activity, "build_s": round(built["job_seconds"], 1), "events/s": round(n / built["job_seconds"]),
                     "peak_rss_mb": round(built["peak_rss_mb"]), "median_rss_mb": round(built["median_rss_mb"]),
                     "stored_mb": round(stored_mb(tables / f"user_histories_{n}") + stored_mb(tables / f"impressions_{n}"), 1)})
        print(rows[-1], flush=True)
    body = ("Compact build_sequences on power-law events (Zipf users, alpha 1.0, over 100,000 users; 10^5 items "
            "with SIDs), embedded engine, 2 cores; peak/median RSS of the whole process tree, sampled every 0.25 s.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Long histories: compact build_sequences vs events (bench_histories)", body, write=not args.no_write)


def ranker(args: argparse.Namespace) -> None:
    import torch

    from sidlib.config import EvaluateConfig
    from sidlib.jobs.evaluate_ranker import build_ranker
    from sidlib.ranker.train import labels, load_split
    from sidlib.variants import parse_variants

    torch.set_num_threads(2)
    tables = Path(args.work) / "ml1m"
    ec, variant = EvaluateConfig(), parse_variants(["id", "side"])[1]
    rows = []
    for n in csv_ints(args.lengths):
        train = load_split(str(tables / "ranker_impressions"), "train", max_rows=args.rows,
                           histories=str(tables / "user_histories"), history_length=n)
        model = build_ranker(variant, ec, CARDINALITIES, None, seed=0)
        optimiser = torch.optim.Adam(model.parameters(), lr=ec.learning_rate)
        order = torch.randperm(len(train["item_id"]), generator=torch.Generator().manual_seed(0))
        assemble = step = 0.0
        for i in range(args.steps + 1):
            t0 = time.perf_counter()
            batch = train.take(order[i * ec.batch_size:(i + 1) * ec.batch_size])
            t1 = time.perf_counter()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), labels(batch))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if i:  # the first step pays for lazy initialisation
                assemble, step = assemble + t1 - t0, step + time.perf_counter() - t1
        rows.append({"history_length": n, "batch_size": ec.batch_size, "steps": args.steps,
                     "assemble_ms_per_step": round(1e3 * assemble / args.steps, 1),
                     "model_ms_per_step": round(1e3 * step / args.steps, 1),
                     "impressions_per_s": round(args.steps * ec.batch_size / (assemble + step))})
        print(rows[-1], flush=True)
    body = (f"The evaluation's ranker (`side` variant, evaluate defaults: dim {ec.embedding_dim}, {ec.heads} heads) "
            f"trained from the compact MovieLens-1M tables (the latest {args.rows:,} train impressions in memory, "
            "histories assembled per batch from `user_histories`), 2 torch threads; per training step of one "
            "batch: assembling it, and the model's forward, backward and Adam step.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Long histories: the ranker trained from assembled histories (bench_histories)", body,
            write=not args.no_write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/sidlib-histories", help="where the tables live")
    parser.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("movielens")
    p.add_argument("--lengths", default="50,1000,10000")
    p.add_argument("--batches", type=int, default=300)
    p = sub.add_parser("synthetic")
    p.add_argument("--events", default="1000000,10000000")
    p = sub.add_parser("ranker")
    p.add_argument("--lengths", default="50,1000")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    {"movielens": movielens, "synthetic": synthetic, "ranker": ranker}[args.part](args)
    print(f"done in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    os._exit(0)


if __name__ == "__main__":
    main()
