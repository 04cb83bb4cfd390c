"""How the cost of encode, EM fit and build_sequences grows with rows, in-process and through the jobs
on the embedded engine (issue 7). Each part appends its own section to RESULTS.md:

    python benchmarks/bench_scale.py inprocess [--dims 384,1024] [--batches 1024,8192,65536]
    python benchmarks/bench_scale.py encode-job [--rows 100000,1000000,10000000]
    python benchmarks/bench_scale.py decode [--rows 1000000]
    python benchmarks/bench_scale.py duplicates [--rows 1000000,10000000]
    python benchmarks/bench_scale.py em [--rows 100000,1000000] [--quantizers rq_kmeans,rq_gmm]
    python benchmarks/bench_scale.py sequences [--events 1000000]

Synthetic inputs (clustered 384-d embeddings, power-law events; deterministic by seed) are written once
under ``--work`` with delta-rs, streamed in chunks, and reused by later runs. Jobs run as subprocesses
through their command line (``jobs/<job>.py key=value ...``), so a figure is what a scheduled run costs;
their peak RSS is that of the whole process tree (engine and Python workers), sampled every 0.25 s
(a scan of /proc: at 0.1 s the sampler itself took ~17% of one core).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quantizers import encode_rate, methods  # noqa: E402
from memory import PeakRSS  # noqa: E402
from report import markdown_table, publish  # noqa: E402

from sidlib.data.synthetic import clustered_embeddings, iter_clustered_embeddings, power_law_events  # noqa: E402
from sidlib.spark.arrow_lists import list_column  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL_VERSION = "synthetic-v1"
IN_PROCESS = ["faiss_rq_b1", "faiss_rq_b5", "faiss_pq", "rq_kmeans_b1", "rq_kmeans_b5", "rq_gmm", "kmeans_4096",
              "dpca", "structured", "fsq", "rq_vae"]
MB = 2**20


def csv_ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",")]


# ----------------------------------------------------------------------------------------- inputs
def embedding_batches(n: int, dim: int, *, as_bytes: bool = False) -> Iterator[Any]:
    """``content_embeddings`` rows 1..n of signal ``text`` as Arrow batches (never all in memory).
    ``as_bytes``: each embedding as one ``4 * dim``-byte binary value (float32) instead of a list."""
    import pyarrow as pa

    logged_at = pa.scalar(1_700_000_000_000_000, pa.timestamp("us", tz="UTC"))
    start = 0
    for chunk in iter_clustered_embeddings(n, dim, seed=0):
        size = len(chunk)
        if as_bytes:
            values = pa.py_buffer(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
            embedding = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * dim), size, [None, values])
        else:
            embedding = list_column(chunk)
        yield pa.record_batch([
            pa.array(np.arange(start + 1, start + size + 1, dtype=np.int64)),
            pa.array(["text"] * size), pa.array([MODEL_VERSION] * size), embedding,
            pa.array([logged_at.value] * size, pa.timestamp("us", tz="UTC")),
        ], names=["item_id", "signal", "model_version", "embedding", "logged_at"])
        start += size


def ensure_embeddings(tables_root: Path, n: int, dim: int = 384, *, as_bytes: bool = False) -> Path:
    """Write the synthetic ``content_embeddings`` table once (delta-rs, streamed); ``as_bytes`` writes
    the binary layout to ``content_embeddings_bytes`` instead."""
    import pyarrow as pa
    from deltalake import write_deltalake

    path = tables_root / ("content_embeddings_bytes" if as_bytes else "content_embeddings")
    if not (path / "_delta_log").is_dir():
        start = time.perf_counter()
        batches = embedding_batches(n, dim, as_bytes=as_bytes)
        first = next(batches)
        reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
        write_deltalake(str(path), reader, mode="error")
        print(f"wrote {n:,} x {dim} embeddings to {path} in {time.perf_counter() - start:.0f}s", flush=True)
    return path


def ensure_events(path: Path, n_events: int, n_users: int, n_items: int) -> dict[str, int]:
    """Write a synthetic power-law events table at ``path`` once; returns its user-activity figures."""
    from deltalake import DeltaTable, write_deltalake

    if not (path / "_delta_log").is_dir():
        events = power_law_events(n_events, n_users=n_users, n_items=n_items, user_alpha=1.0, seed=0)
        write_deltalake(str(path), events, mode="error")
    users = DeltaTable(str(path)).to_pyarrow_table(columns=["user_id"]).column("user_id").to_numpy()
    counts = np.bincount(users)
    return {"events": int(len(users)), "users": int((counts > 0).sum()), "max_user_events": int(counts.max()),
            "users_over_100k": int((counts >= 100_000).sum())}


# ------------------------------------------------------------------------------------------- jobs
def run_job(job: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Run ``jobs/<job>.py`` as a subprocess; its JSON summary plus wall time, peak tree RSS and log."""
    cmd = [sys.executable, str(REPO / "jobs" / f"{job}.py"), *overrides]
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
        with PeakRSS(proc.pid, tree=True, interval=0.25) as mem:
            out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-4000:]}")
    summary = json.loads(out[out.index("{"):])
    return {**summary, "wall_s": time.perf_counter() - start, "peak_rss_mb": mem.peak / MB,
            "median_rss_mb": mem.median / MB, "log": err}


def ensure_artifact(work: Path, quantizer: str) -> int:
    """An artifact of ``quantizer`` for the synthetic ``text`` signal, fitted once on 10^5 rows."""
    marker = work / f"artifact_{quantizer}.json"
    if not marker.exists():
        tables = work / "n100000" / "tables"
        ensure_embeddings(tables, 100_000)
        summary = run_job("fit_quantizer", [f"tables.root={tables}", f"artifacts.root={work / 'artifacts'}",
                                            "fit.signals=[text]", f"fit.quantizer={quantizer}"])
        marker.write_text(json.dumps({"version": summary["artifacts"][0]["version"]}))
    return int(json.loads(marker.read_text())["version"])


# ------------------------------------------------------------------------------------------ parts
def return_freed_memory() -> None:
    """Serve every allocation over 64 KiB by mmap, so freed buffers go back to the OS and RSS growth
    during one encode is that encode's working memory (glibc otherwise raises the threshold and
    keeps freed buffers on its heap)."""
    import ctypes

    M_MMAP_THRESHOLD = -3
    ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 65536)


def in_process(args: argparse.Namespace) -> None:
    import faiss
    import torch

    return_freed_memory()
    faiss.omp_set_num_threads(torch.get_num_threads())
    names = args.methods.split(",") if args.methods else IN_PROCESS
    batches = csv_ints(args.batches)
    rows = []
    for dim in csv_ints(args.dims):
        train = clustered_embeddings(args.train_rows, dim, seed=0)
        test = clustered_embeddings(max(batches), dim, seed=1)
        by_name = methods(dim, vae_epochs=args.vae_epochs)
        for name in names:
            if name == "faiss_pq" and dim % 3:
                print(f"skipping faiss_pq at dim {dim}: FAISS PQ 3x8 needs dim divisible by 3", flush=True)
                continue
            q = by_name[name]()
            start = time.perf_counter()
            q.fit(train)
            row: dict[str, Any] = {"dim": dim, "method": name, "fit_s": round(time.perf_counter() - start, 1)}
            for b in batches:
                row[f"items/s @{b}"] = encode_rate(q, test[:b])
            with PeakRSS(interval=0.005) as mem:
                for _ in range(3):
                    q.encode(test)
            row["encode_mem_mb"] = (mem.peak - mem.start) / MB
            rows.append(row)
            print(row, flush=True)
    big = f"items/s @{max(batches)}"
    for row in rows:
        row["per_core"] = row[big] / torch.get_num_threads()
        for ref in ("faiss_rq_b1", "faiss_rq_b5"):
            base = next((r[big] for r in rows if r["method"] == ref and r["dim"] == row["dim"]), None)
            row[f"x_{ref}"] = row[big] / base if base else float("nan")
    columns = ["dim", "method", "fit_s", *[f"items/s @{b}" for b in batches], "per_core", "x_faiss_rq_b1",
               "x_faiss_rq_b5", "encode_mem_mb"]
    body = (f"Synthetic clustered unit-norm embeddings; fit on {args.train_rows:,} rows, encode timed for >= 1 s "
            f"per batch size with {torch.get_num_threads()} threads (torch and FAISS). x_faiss_* = items/s at the "
            f"largest batch over FAISS ResidualQuantizer 3x8 at beam 1 / 5 on the same data. encode_mem_mb = peak "
            f"RSS growth while encoding one {max(batches):,}-row batch. VQ-VAE trained {args.vae_epochs} epochs "
            f"(encode cost does not depend on training length). FAISS PQ 3x8 runs only where dim is divisible by "
            f"3.\n\n{markdown_table(rows, columns)}")
    publish("Scale: in-process encode throughput and memory vs FAISS (issue 7)", body, write=not args.no_write)


def encode_job(args: argparse.Namespace) -> None:
    from sidlib.artifacts import ArtifactStore

    work = Path(args.work)
    version = ensure_artifact(work, args.quantizer)
    quantizer = ArtifactStore(str(work / "artifacts")).get(version).load_quantizer()
    reference = clustered_embeddings(65_536, 384, seed=1)
    rows = []
    for pool in args.memory_pool_mb.split(","):
        for n in csv_ints(args.rows):
            tables = work / f"n{n}" / "tables"
            ensure_embeddings(tables, n)
            shutil.rmtree(tables / "item_sids", ignore_errors=True)
            # first run: item_sids does not exist yet (plain write); rerun: the version's partition is
            # replaced in place (MERGE ... ON FALSE, which also reads the rows it replaces)
            # MERGE holds the replaced rows in memory: rerun it only up to --replace-max-rows
            for run in ("new table", "replace version")[:1 if n > args.replace_max_rows else 2]:
                # the host's speed drifts by tens of % over minutes: time the reference on either side of
                # each job and compare the job with their mean
                before = encode_rate(quantizer, reference, min_seconds=5.0)
                s = run_job("encode_items", [f"tables.root={tables}", f"artifacts.root={work / 'artifacts'}",
                                             "encode.signal=text", f"encode.sid_version={version}",
                                             f"engine.arrow_batch_rows={args.arrow_batch_rows}",
                                             f"engine.memory_pool_mb={'null' if pool == 'none' else pool}"])
                job_rate = s["items_encoded"] / s["job_seconds"]
                rate = (before + encode_rate(quantizer, reference, min_seconds=5.0)) / 2
                rows.append({"memory_pool_mb": pool, "rows": n, "run": run, "items_encoded": s["items_encoded"],
                             "job_s": s["job_seconds"], "wall_s": s["wall_s"], "items/s": job_rate,
                             "per_core": job_rate / args.cores, "in_process_items/s": rate,
                             "share_of_in_process": job_rate / rate, "peak_rss_mb": s["peak_rss_mb"],
                             "median_rss_mb": s["median_rss_mb"]})
                print(rows[-1], flush=True)
    for row in rows:
        smallest = next(r for r in rows if (r["run"], r["memory_pool_mb"]) == (row["run"], row["memory_pool_mb"]))
        row["rss_vs_smallest"] = row["peak_rss_mb"] / smallest["peak_rss_mb"]
    body = (f"`encode_items` (full mode) on the embedded engine (Sail), {args.quantizer} artifact v{version} "
            f"(24 bits), 384-d synthetic rows in 100 MB files (~67k rows; Sail hands a UDF 8,192-row batches and "
            f"ignores `engine.arrow_batch_rows`), `item_sids` written in 16 MB files (`tables.target_file_mb`). "
            f"memory_pool_mb = `engine.memory_pool_mb` (none: Sail's unbounded default). job_s = the job alone (read + check + encode in "
            f"mapInArrow + write item_sids, count; bad rows would add a scan to classify them); wall_s adds interpreter and engine "
            f"start. share_of_in_process = job items/s over in-process `encode` of the same artifact "
            f"(in_process_items/s: 64k-row batches, same cores, the mean of 5 s timed right before and 5 s right after that job). peak_rss_mb / median_rss_mb = peak and median of the whole process tree's RSS, sampled every 0.25 s.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Scale: encode_items job vs rows on the embedded engine (issue 7)", body, write=not args.no_write)


def count_batch_rows(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` function that returns each batch's row count: what it costs the engine to hand
    the embeddings to Python (Arrow imports them without a copy), with no work on them after."""
    import pyarrow as pa

    for batch in batches:
        yield pa.record_batch([pa.array([batch.num_rows], pa.int64())], names=["rows"])


def decode(args: argparse.Namespace) -> None:
    """Seconds to read the embedding column into a UDF as ``array<float>`` and as binary."""
    import pyspark.sql.functions as F

    from sidlib.config import EngineConfig
    from sidlib.spark.session import open_session

    tables = Path(args.work) / f"n{args.rows}" / "tables"
    paths = {"array<float>": ensure_embeddings(tables, args.rows),
             f"binary({4 * 384})": ensure_embeddings(tables, args.rows, as_bytes=True)}
    rows = []
    with open_session(EngineConfig()) as spark:
        for layout, path in paths.items():
            frame = spark.read.format("delta").load(str(path)).select("item_id", "embedding")
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                read = frame.mapInArrow(count_batch_rows, "rows long").agg(F.sum("rows")).collect()[0][0]
                seconds.append(time.perf_counter() - start)
            assert read == args.rows, (layout, read)
            best = float(np.median(seconds))
            rows.append({"layout": layout, "rows": args.rows, "median_s": best, "min_s": min(seconds),
                         "us_per_row_per_core": best * args.cores / args.rows * 1e6})
            print(rows[-1], flush=True)
    body = (f"The same {args.rows:,} synthetic 384-d embeddings stored two ways, read through Sail into a "
            f"`mapInArrow` UDF that only counts rows ({args.repeats} runs, median; {args.cores} "
            f"cores). `array<float>` is `content_embeddings`' layout; `binary` is one 1,536-byte float32 value "
            f"per row. The difference is what decoding Parquet's repeated values costs the encode job.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Scale: reading embeddings through the engine, array<float> vs binary (issue 7)", body,
            write=not args.no_write)


DUPLICATE_CHECKS = ("group-by", "sorted partitions")


def duplicate_check(args: argparse.Namespace) -> None:
    """Peak memory and seconds of the exact duplicate-id check over the synthetic ``content_embeddings``:
    a ``groupBy("item_id")`` against ``has_duplicate_ids`` (ids sorted per hash partition), each in a
    process of its own so that neither inherits the other's pages."""
    if args.one:
        print(json.dumps(one_duplicate_check(args.one, int(args.rows), Path(args.work))))
        return
    rows = []
    for n in csv_ints(args.rows):
        ensure_embeddings(Path(args.work) / f"n{n}" / "tables", n)
        for method in DUPLICATE_CHECKS:
            cmd = [sys.executable, __file__, "--work", args.work, "duplicates", "--rows", str(n), "--one", method]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
            print(rows[-1], flush=True)
    body = ("Whether any of n item ids repeats (none do), as `read_signal` asks before every fit and encode, on "
            "the embedded engine (Sail, unbounded memory). group-by = `groupBy(item_id).count()` filtered to "
            "counts over 1 (the check until 5f025e8); sorted partitions = `has_duplicate_ids`: the id "
            "column hash-partitioned, each partition's ids sorted as one numpy int64 array in `mapInArrow`. "
            "Each row is a fresh process; rss_growth_mb = peak RSS of the process tree during the check over "
            "its RSS before.\n\n" + markdown_table(rows, list(rows[0])))
    publish("Scale: the duplicate-id check's memory vs rows (issue 7)", body, write=not args.no_write)


def one_duplicate_check(method: str, n: int, work: Path) -> dict[str, Any]:
    import pyspark.sql.functions as F

    from sidlib.config import EngineConfig
    from sidlib.spark.row_checks import has_duplicate_ids
    from sidlib.spark.session import open_session

    path = work / f"n{n}" / "tables" / "content_embeddings"
    with open_session(EngineConfig()) as spark:
        rows = spark.read.format("delta").load(str(path)).where(
            (F.col("signal") == "text") & (F.col("model_version") == MODEL_VERSION))
        rows.limit(1).collect()  # engine warm, table log read: the check alone is measured
        with PeakRSS(tree=True) as mem:
            start = time.perf_counter()
            if method == "group-by":
                repeated = bool(rows.groupBy("item_id").count().where("count > 1").limit(1).collect())
            else:
                repeated = has_duplicate_ids(rows)
            seconds = time.perf_counter() - start
    assert not repeated, "the synthetic ids are unique"
    return {"rows": n, "check": method, "seconds": seconds, "rss_growth_mb": (mem.peak - mem.start) / MB,
            "bytes_per_id": (mem.peak - mem.start) / n}


EM_LINE = re.compile(r"EM level (\d+)/\d+ iteration (\d+): .*\((\d+\.\d+)s\)")


def single_process_iteration(quantizer_name: str, n: int) -> float:
    """Seconds of one level-1 EM iteration over the same ``n`` rows in one process (chunks streamed;
    generating them is not timed)."""
    from sidlib.quantizers import build
    from sidlib.quantizers.base import add_statistics

    q = build(quantizer_name, 384, 24)
    q.init_level(0, clustered_embeddings(min(n, 200_000), 384, seed=0))
    seconds, parts = 0.0, []
    for chunk in iter_clustered_embeddings(n, 384, seed=0):
        start = time.perf_counter()
        parts.append(q.level_statistics(0, chunk))
        seconds += time.perf_counter() - start
    start = time.perf_counter()
    q.apply_statistics(0, add_statistics(parts))
    return seconds + time.perf_counter() - start


def em_fit(args: argparse.Namespace) -> None:
    work = Path(args.work)
    rows = []
    for name in args.quantizers.split(","):
        for n in csv_ints(args.rows):
            tables = work / f"n{n}" / "tables"
            ensure_embeddings(tables, n)
            s = run_job("fit_quantizer", [f"tables.root={tables}", f"artifacts.root={work / 'em_artifacts'}",
                                          "fit.signals=[text]", f"fit.quantizer={name}",
                                          f"fit.params={{max_iter: {args.max_iter}, tol: 0}}"])
            its = [(int(m[1]), float(m[3])) for m in EM_LINE.finditer(s["log"])]
            first = [sec for level, sec in its if level == 1]
            later = [sec for level, sec in its if level > 1]
            single = single_process_iteration(name, n)
            rows.append({"quantizer": name, "rows": n, "iterations": len(its),
                         "s/iter level 1": float(np.mean(first)), "s/iter levels 2+": float(np.mean(later)),
                         "single-process s/iter level 1": single, "fit job s": s["job_seconds"],
                         "peak_rss_mb": s["peak_rss_mb"], "median_rss_mb": s["median_rss_mb"]})
            print(rows[-1], flush=True)
    body = (f"`fit_quantizer` on the embedded engine, 384-d synthetic rows, 24 bits, {args.max_iter} EM iterations per "
            f"level (tol 0), statistics over `fit.stat_partitions` = 8 partitions. s/iter = one distributed E-step "
            f"(all training rows, 80% of the table) plus the driver's M-step, from the job's log; single-process = "
            f"the same level-1 iteration over all n rows in one process on in-memory chunks.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Scale: distributed EM fit vs rows (issue 7)", body, write=not args.no_write)


def sequences(args: argparse.Namespace) -> None:
    work = Path(args.work)
    version = ensure_artifact(work, args.quantizer)
    tables = work / "n100000" / "tables"
    if not (tables / "item_sids").is_dir():
        run_job("encode_items", [f"tables.root={tables}", f"artifacts.root={work / 'artifacts'}",
                                 "encode.signal=text", f"encode.sid_version={version}"])
    rows = []
    for n in csv_ints(args.events):
        # every size gets its own events/sequences tables next to the 10^5 items' SIDs
        activity = ensure_events(tables / f"events_{n}", n, n_users=args.users, n_items=100_000)
        s = run_job("build_sequences", [f"tables.root={tables}", f"tables.events=events_{n}",
                                        f"tables.sequences=sequences_{n}", "sequences.signal=text",
                                        f"sequences.sid_version={version}",
                                        f"sequences.history_length={args.history_length}"])
        rows.append({**activity, "history": args.history_length, "job_s": s["job_seconds"],
                     "events/s": n / s["job_seconds"], "wall_s": s["wall_s"], "peak_rss_mb": s["peak_rss_mb"]})
        print(rows[-1], flush=True)
    body = (f"`build_sequences` on the embedded engine: power-law events (Zipf users, alpha 1.0, over "
            f"{args.users:,} users; 10^5 items with SIDs), history {args.history_length}, default chunking of heavy "
            f"users (`sequences.max_events_per_task`). peak_rss_mb / median_rss_mb = peak and median of the whole process tree's RSS, sampled every 0.25 s.\n\n"
            + markdown_table(rows, list(rows[0])))
    publish("Scale: build_sequences vs events (issue 7)", body, write=not args.no_write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/sidlib-scale", help="where synthetic tables and artifacts live")
    parser.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    parts = parser.add_subparsers(dest="part", required=True)
    p = parts.add_parser("inprocess")
    p.add_argument("--dims", default="384,1024")
    p.add_argument("--batches", default="1024,8192,65536")
    p.add_argument("--methods", help=f"comma-separated subset of {','.join(IN_PROCESS)}")
    p.add_argument("--train-rows", type=int, default=20_000)
    p.add_argument("--vae-epochs", type=int, default=3)
    p.set_defaults(run=in_process)
    p = parts.add_parser("encode-job")
    p.add_argument("--rows", default="100000,1000000,10000000")
    p.add_argument("--quantizer", default="rq_kmeans")
    p.add_argument("--arrow-batch-rows", type=int, default=8192)
    p.add_argument("--cores", type=int, default=2, help="cores the engine may use (for items/s per core)")
    p.add_argument("--memory-pool-mb", default="none,256",
                   help="comma-separated engine.memory_pool_mb settings to run (none: unbounded)")
    p.add_argument("--replace-max-rows", type=int, default=1_000_000, help="largest table also re-encoded in place")
    p.set_defaults(run=encode_job)
    p = parts.add_parser("decode")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cores", type=int, default=2, help="cores the engine may use (for us per row per core)")
    p.set_defaults(run=decode)
    p = parts.add_parser("duplicates")
    p.add_argument("--rows", default="1000000,10000000")
    p.add_argument("--one", choices=DUPLICATE_CHECKS, help=argparse.SUPPRESS)  # child: one check, JSON out
    p.set_defaults(run=duplicate_check)
    p = parts.add_parser("em")
    p.add_argument("--rows", default="100000,1000000")
    p.add_argument("--quantizers", default="rq_kmeans,rq_gmm")
    p.add_argument("--max-iter", type=int, default=2)
    p.set_defaults(run=em_fit)
    p = parts.add_parser("sequences")
    p.add_argument("--events", default="1000000")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--history-length", type=int, default=50)
    p.add_argument("--quantizer", default="rq_kmeans")
    p.set_defaults(run=sequences)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
