"""evaluate_ranker: does a SID feature make the ranker better, and at what cost?

Trains the ranker (:mod:`sidlib.ranker`) once per ``evaluate.variants`` entry and ``evaluate.seeds``
seed on the ``train`` split of ``ranker_training`` (with ``sequences.layout: compact``, of
``ranker_impressions`` with histories of ``sequences.history_length`` events assembled per batch from
``user_histories``; early stopping on ``valid``), and reports on
``test``: NE of click and conv on all, warm and cold impressions (cold = target item never a train
target), NE gain over the ``id`` baseline of the same seed with a t-interval over seeds, feature cost
per item occurrence and the SIDE paper's RoI. It also measures the SID itself, independent of the
ranker: Recall@k of SIDE codes against raw-embedding kNN (paper Table 2 protocol) and, for a few
query movies, their nearest titles by raw embedding vs by SIDE codes (paper Figure 4).
The SID version and signal are those ``ranker_training`` was built with. Writes a Markdown report with
plots under ``evaluate.report_dir`` and returns the same figures (:class:`EvaluateResult`)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sidlib.artifacts import ArtifactStore
from sidlib.config import EvaluateConfig, SidlibConfig
from sidlib.errors import TableError
from sidlib.metrics import nearest_neighbours, recall_at_k
from sidlib.ranker import ItemEncoder, Ranker, RankerSettings, fit, load_split, predict
from sidlib.ranker.features import RawEmbeddings
from sidlib.ranker.model import TASKS
from sidlib.ranker.offline import SLICES, ne_gain, roi, slice_masks, slice_ne, t_interval
from sidlib.ranker.report import write_report
from sidlib.results import Result
from sidlib.sid import side_codes
from sidlib.spark.local_values import content_matrix, item_sids, item_titles
from sidlib.variants import BASELINE, Variant, parse_variants

log = logging.getLogger(__name__)


def train_settings(ec: EvaluateConfig) -> RankerSettings:
    return RankerSettings(epochs=ec.epochs, batch_size=ec.batch_size, learning_rate=ec.learning_rate,
                         eval_every=ec.eval_every, patience=ec.patience, max_steps=ec.max_steps)


def build_ranker(variant: Variant, ec: EvaluateConfig, cardinalities: list[int], raw: RawEmbeddings | None,
                 seed: int) -> Ranker:
    """A freshly initialised ranker (initialisation drawn from ``seed``)."""
    torch.manual_seed(int(seed))
    items = ItemEncoder(variant, ec.embedding_dim, item_buckets=ec.item_buckets, cardinalities=cardinalities,
                        max_table_rows=ec.max_table_rows, raw=raw if variant.kind == "raw" else None)
    return Ranker(items, dim=ec.embedding_dim, heads=ec.heads, hidden=ec.hidden, user_buckets=ec.user_buckets)


def sid_quality(ec: EvaluateConfig, ids: np.ndarray, matrix: np.ndarray, sids: dict[int, int],
                cardinalities: list[int], titles: dict[int, str]) -> dict[str, Any]:
    """Recall@k of SIDE codes vs raw kNN over the items with both, and the qualitative neighbour table."""
    keep = np.array([i in sids and sids[i] >= 0 for i in ids])
    ids, X = ids[keep], matrix[keep]
    Y = side_codes(np.array([sids[int(i)] for i in ids], dtype=np.int64), cardinalities)
    ks = [k for k in ec.recall_k if k <= len(ids) - 1]
    recall = recall_at_k(X, Y, ks, n_queries=ec.recall_queries, ref_k=min(20, len(ids) - 1), metric="euclidean") if ks else {}
    chance = {k: k / (len(ids) - 1) for k in ks}  # expected recall of a random candidate list
    position = {int(i): n for n, i in enumerate(ids)}
    queries = []
    for wanted in ec.query_titles:
        named = [(int(i), titles.get(int(i), "").lower()) for i in ids]
        match = next((i for i, t in named if t == wanted.lower()), None)
        match = match if match is not None else next((i for i, t in named if wanted.lower() in t), None)
        if match is None:
            log.warning("query title %r not found among items with a SID", wanted)
            continue
        q = np.array([position[int(match)]])
        by = {name: [titles.get(int(ids[j]), str(ids[j])) for j in nearest_neighbours(points, q, ec.neighbours, metric)[0]]
              for name, points, metric in (("raw", X, "cosine"), ("side", Y, "euclidean"))}
        queries.append({"query": titles.get(int(match), str(match)), **by})
    return {"n_items": int(len(ids)), "recall": recall, "chance": chance, "neighbours": queries}


def summarise(variants: list[Variant], ne: dict[str, list[dict[str, dict[str, float | None]]]], confidence: float,
              raw_dim: int) -> dict[str, dict[str, Any]]:
    """Per variant: NE mean per task/slice, paired gain vs the baseline (mean, CI half width), cost, RoI."""
    out: dict[str, dict[str, Any]] = {}
    base = ne[BASELINE]
    for v in variants:
        runs = ne[v.name]
        row: dict[str, Any] = {"cost_bytes": v.cost_bytes(raw_dim), "ne": {}, "gain": {}}
        for task in TASKS:
            row["ne"][task] = {s: t_interval([r[task][s] for r in runs], confidence)[0] for s in SLICES}
            row["gain"][task] = {}
            for s in SLICES:
                gains = [ne_gain(b[task][s], r[task][s]) for b, r in zip(base, runs)
                         if b[task][s] is not None and r[task][s] is not None]
                mean, half = t_interval(gains, confidence)
                row["gain"][task][s] = {"mean": mean, "ci": half, "per_seed": gains}
        gains_all = [row["gain"][t]["all"]["mean"] for t in TASKS]
        row["roi"] = None if v.name == BASELINE or any(np.isnan(gains_all)) else roi(*gains_all, row["cost_bytes"])
        out[v.name] = row
    return out


@dataclass(frozen=True)
class EvaluateResult(Result):
    """What was evaluated (the ``ranker_training`` version, the SID, rows per split, the cold test
    slice, the seeds), per variant its NE, gain over the baseline, cost and RoI, the SID's own
    quality, and where the report was written."""

    inputs: dict[str, dict[str, Any]]
    sid: dict[str, Any]
    rows: dict[str, int]
    test_cold: dict[str, int]
    seeds: list[int]
    variants: dict[str, dict[str, Any]]
    sid_quality: dict[str, Any]
    report: dict[str, Any] | None = None


def run(cfg: SidlibConfig, tables: Any) -> EvaluateResult:
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.evaluate.threads or previous)
    try:
        return evaluate(cfg, tables)
    finally:  # a notebook or test process keeps its own setting
        torch.set_num_threads(previous)


def evaluate(cfg: SidlibConfig, tables: Any) -> EvaluateResult:
    """The job's work (:func:`run` sets the thread count around it)."""
    ec = cfg.evaluate
    variants = parse_variants(ec.variants)
    settings = train_settings(ec)

    training_table = cfg.sequences.training_table
    location, version = tables.storage_location(training_table), tables.version(training_table)
    compact = {"histories": tables.storage_location("user_histories"), "history_length": cfg.sequences.history_length} \
        if cfg.sequences.layout == "compact" else {}
    data = {split: load_split(location, split, fmt=cfg.tables.format, version=version,
                              max_rows=ec.max_rows.get(split), keep="latest" if split == "train" else "earliest",
                              **compact)
            for split in ("train", "valid", "test")}
    sid_versions = torch.unique(data["train"]["sid_version"]).tolist()
    if len(sid_versions) != 1:
        raise TableError(f"ranker_training mixes SID versions {sid_versions}")
    artifact = ArtifactStore(cfg.artifacts.root).get(int(sid_versions[0]))
    cardinalities = [int(c) for c in artifact.manifest["cardinalities"]]
    log.info("ranker_training v%s: %s rows; SID v%d (%s, cardinalities %s)", version,
             {s: len(d["item_id"]) for s, d in data.items()}, artifact.version, artifact.signal, cardinalities)

    ids, matrix = content_matrix(tables, artifact.signal, artifact.model_version)
    raw = RawEmbeddings(ids, matrix) if any(v.kind == "raw" for v in variants) else None
    titles = item_titles(tables)

    test = data["test"]
    masks = slice_masks(data["train"]["item_id"].numpy(), test["item_id"].numpy())
    y = {task: test[task].numpy() for task in TASKS}
    ne: dict[str, list[dict[str, dict[str, float | None]]]] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    params: dict[str, int] = {}
    for v in variants:
        ne[v.name], runs[v.name] = [], []
        for seed in ec.seeds:
            model = build_ranker(v, ec, cardinalities, raw, seed)
            params[v.name] = sum(p.numel() for p in model.parameters())
            info = fit(model, data["train"], data["valid"], settings, seed)
            probs = predict(model, test)
            ne[v.name].append({task: slice_ne(y[task], probs[:, k], masks) for k, task in enumerate(TASKS)})
            runs[v.name].append({"seed": seed, **{k: info[k] for k in ("steps", "best_valid_loss", "stopped_early", "seconds")}})
            log.info("%s seed %d: %d steps in %.1fs, test NE click %s conv %s", v.name, seed, info["steps"],
                     info["seconds"], ne[v.name][-1]["click"]["all"], ne[v.name][-1]["conv"]["all"])

    table = summarise(variants, ne, ec.confidence, matrix.shape[1])
    for name, row in table.items():
        row.update(params=params[name], runs=runs[name])
    result = EvaluateResult(
        inputs={training_table: {"location": location, "version": version,
                                 **({"history_length": cfg.sequences.history_length} if compact else {})}},
        sid={"version": artifact.version, "signal": artifact.signal, "cardinalities": cardinalities},
        rows={s: int(len(d["item_id"])) for s, d in data.items()},
        test_cold={"impressions": int(masks["cold"].sum()),
                   "items": int(len(np.unique(test["item_id"].numpy()[masks["cold"]])))},
        seeds=list(ec.seeds),
        variants=table,
        sid_quality=sid_quality(ec, ids, matrix, item_sids(tables, artifact.signal, artifact.version),
                                cardinalities, titles),
    )
    return dataclasses.replace(result, report=write_report(ec.report_dir, result, ec.confidence))
