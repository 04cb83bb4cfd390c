"""Markdown + PNG report of an evaluation summary (see :mod:`sidlib.jobs.evaluate_ranker`), readable in a
notebook or a code review without re-running anything."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidlib.ranker.model import TASKS
from sidlib.ranker.offline import SLICES


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _gain(g: dict[str, Any]) -> str:
    return f"{_num(g['mean'], 2)} ± {_num(g['ci'], 2)}"


def variant_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per variant: NE (all), gain ± CI per task and slice, cost, RoI, parameters."""
    rows = []
    for name, v in summary["variants"].items():
        row = {"variant": name, "params": f"{v['params']:,}", "cost B": str(v["cost_bytes"]),
               "RoI %/B": _num(v["roi"], 4)}
        for task in TASKS:
            row[f"NE {task}"] = _num(v["ne"][task]["all"])
            row.update({f"gain {task} {s} %": _gain(v["gain"][task][s]) for s in SLICES})
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows])


def _plot_gains(summary: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in summary["variants"] if n != "id"]
    fig, axes = plt.subplots(1, len(TASKS), figsize=(5 * len(TASKS), 3.5), sharey=True)
    width = 0.8 / len(SLICES)
    for ax, task in zip(axes, TASKS):
        for k, s in enumerate(SLICES):
            g = [summary["variants"][n]["gain"][task][s] for n in names]
            ax.bar([i + k * width for i in range(len(names))], [x["mean"] for x in g], width,
                   yerr=[0 if math.isnan(x["ci"]) else x["ci"] for x in g], capsize=3, label=s)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks([i + width for i in range(len(names))], names)
        ax.set_title(f"NE gain vs id baseline: {task}")
        ax.set_ylabel("% (higher is better)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_recall(quality: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(quality["recall"])
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(ks, [quality["recall"][k] for k in ks], marker="o", label="SIDE codes")
    ax.plot(ks, [quality["chance"][k] for k in ks], linestyle="--", label="random")
    ax.set_xlabel("k")
    ax.set_ylabel("recall of raw top-20")
    ax.set_title(f"Recall@k over {quality['n_items']} items")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render(summary: Mapping[str, Any], confidence: float, plots: dict[str, str]) -> str:
    """The report's Markdown body (no title): variant table, recall table, neighbour table; ``plots``
    maps ``gains``/``recall`` to the image links to embed (relative in the report, absolute elsewhere)."""
    quality, sid = summary["sid_quality"], summary["sid"]
    recall_rows = [{"k": str(k), "SIDE recall": _num(quality["recall"][k]), "random": _num(quality["chance"][k])}
                   for k in sorted(quality["recall"])]
    neighbour_lines = [f"| {q['query']} | {'; '.join(q['raw'])} | {'; '.join(q['side'])} |" for q in quality["neighbours"]]
    return "\n".join([
        f"SID v{sid['version']} ({sid['signal']}, cardinalities {sid['cardinalities']}); rows {summary['rows']}; "
        f"seeds {summary['seeds']}; cold test impressions {summary['test_cold']['impressions']} "
        f"({summary['test_cold']['items']} items). Gains are % NE reduction vs the `id` baseline of the same seed, "
        f"± the {confidence:.0%} t-interval half width over seeds; cost is bytes per item occurrence; "
        f"RoI = (gain click + gain conv) / (2 x cost) on all impressions.", "",
        markdown_table(variant_rows(summary)), "",
        f"![NE gain]({plots['gains']})", "",
        f"### SIDE codes vs raw-embedding kNN (recall of the raw top-20, {quality['n_items']} items)", "",
        markdown_table(recall_rows) if recall_rows else "(too few items)", "",
        f"![recall]({plots['recall']})" if recall_rows else "", "",
        "### Nearest titles: raw embedding vs SIDE codes", "",
        "| query | raw (cosine) | SIDE codes (euclidean) |", "|---|---|---|", *neighbour_lines, "",
    ])


def write_report(report_dir: str | Path, summary: Mapping[str, Any], confidence: float) -> dict[str, Any]:
    """Write ``report.md``, ``ne_gain.png`` and ``recall.png``; returns their paths."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    gains_png, recall_png, md = out / "ne_gain.png", out / "recall.png", out / "report.md"
    _plot_gains(summary, gains_png)
    has_recall = bool(summary["sid_quality"]["recall"])
    if has_recall:
        _plot_recall(summary["sid_quality"], recall_png)
    md.write_text("# Ranker evaluation\n\n" + render(summary, confidence, {"gains": gains_png.name, "recall": recall_png.name}))
    return {"markdown": str(md), "plots": [str(gains_png)] + ([str(recall_png)] if has_recall else [])}
