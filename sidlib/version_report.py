"""A report per SID version, for the operator deciding whether it may serve: how each code position is
used, how items spread over SIDs, the largest buckets (with example titles), and how many items
changed their SID against the version it would replace. Written as Markdown with one PNG; numpy and
matplotlib only (the codes come from :func:`sidlib.spark.local_values.version_codes`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sidlib.metrics import gini, perplexity, utilization

log = logging.getLogger(__name__)

#: Buckets listed in the report, and example titles per bucket.
LARGEST_BUCKETS, EXAMPLES = 5, 3
#: Titles of the given item ids (those it knows).
TitleLookup = Callable[[Iterable[int]], Mapping[int, str]]


def version_figures(codes: np.ndarray, cardinalities: Sequence[int], item_ids: np.ndarray,
                    titles: TitleLookup, changes: Mapping[str, int] | None) -> dict[str, Any]:
    """The report's figures over the items given (``codes[i]`` is ``item_ids[i]``'s); ``titles`` is
    asked only for the largest buckets' example items."""
    cards = [int(c) for c in cardinalities]
    usage, perp = utilization(codes, cards), perplexity(codes, cards)
    positions = [{"position": k, "codes": cards[k], "utilization": float(usage[k]), "perplexity": float(perp[k]),
                  "dead_codes": int(round(cards[k] * (1 - usage[k])))} for k in range(len(cards))]
    # one grouping of the items by SID serves the bucket figures, the largest buckets and the plot
    distinct, inverse = np.unique(codes, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), minlength=len(distinct))
    largest = []
    for bucket in np.argsort(-counts, kind="stable")[:LARGEST_BUCKETS]:
        if counts[bucket] < 2:
            break
        largest.append({"codes": distinct[bucket].tolist(), "items": int(counts[bucket]),
                        "examples": [int(i) for i in item_ids[inverse.ravel() == bucket][:EXAMPLES]]})
    known = titles([i for bucket in largest for i in bucket["examples"]]) if largest else {}
    for bucket in largest:
        bucket["examples"] = [known.get(i, str(i)) for i in bucket["examples"]]
    churn = None
    if changes and changes.get("compared"):
        churn = {"compared": int(changes["compared"]),
                 "first_code_changed": changes["prefix_changed"] / changes["compared"],
                 "sid_changed": changes["sid_changed"] / changes["compared"]}
    return {"items": int(len(codes)), "positions": positions, "unique_sid_rate": len(counts) / len(codes),
            "bucket_gini": gini(counts), "bucket_sizes": counts, "largest_buckets": largest, "churn": churn}


def render(version: int, signal: str, figures: Mapping[str, Any], previous: int | None, plot: str | None,
           total: int) -> str:
    counted = (f"{figures['items']} items" if figures["items"] == total
               else f"a sample of {figures['items']} of its {total} items (by a hash of item_id)")
    lines = [f"# SID version {version} ({signal})", "",
             f"Over {counted}: unique-SID rate {figures['unique_sid_rate']:.4f}; "
             f"Gini of items per SID {figures['bucket_gini']:.4f}.", "",
             "| position | codes | utilization | perplexity | dead codes |", "|---|---|---|---|---|"]
    lines += [f"| {p['position']} | {p['codes']} | {p['utilization']:.3f} | {p['perplexity']:.1f} | {p['dead_codes']} |"
              for p in figures["positions"]]
    lines += ["", "## Largest buckets", ""]
    if figures["largest_buckets"]:
        lines += ["| codes | items | examples |", "|---|---|---|"]
        lines += [f"| {b['codes']} | {b['items']} | {'; '.join(b['examples'])} |" for b in figures["largest_buckets"]]
    else:
        lines.append("Every item has its own SID.")
    churn = figures["churn"]
    lines += ["", "## Against the previous version", ""]
    if churn is None:
        lines.append("No previous version." if previous is None else f"No items in common with v{previous}.")
    else:
        lines.append(f"Of the {churn['compared']} items v{previous} and v{version} both encode, "
                     f"{churn['first_code_changed']:.2%} changed their first code and {churn['sid_changed']:.2%} "
                     f"their SID.")
    return "\n".join(lines + (["", f"![code use and bucket sizes]({plot})"] if plot else []) + [""])


def _plot(figures: Mapping[str, Any], path: Path) -> bool:
    """Draw the figure; ``False`` (the report goes without it) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed: the version report has no plot (pip install sidlib[demo])")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    positions = figures["positions"]
    left.bar([p["position"] for p in positions], [p["utilization"] for p in positions])
    left.set(xlabel="code position", ylabel="utilization", ylim=(0, 1.05), title="codes used per position")
    sizes = figures["bucket_sizes"]
    right.hist(sizes, bins=np.arange(1, sizes.max() + 2) - 0.5, log=True)
    right.set(xlabel="items per SID", ylabel="SIDs", title="bucket sizes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_version_report(report_dir: str | Path, version: int, signal: str, codes: np.ndarray,
                         cardinalities: Sequence[int], item_ids: np.ndarray, titles: TitleLookup,
                         *, total: int | None = None, previous: int | None = None,
                         changes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Write ``report.md`` and ``codes.png`` under ``report_dir`` from the codes of ``item_ids`` (all
    ``total`` items of the version, or a sample of them); returns their paths and the headline figures
    (the summary's part of the report)."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = version_figures(codes, cardinalities, item_ids, titles, changes)
    plot = out / "codes.png"
    plotted = _plot(figures, plot)
    markdown = out / "report.md"
    markdown.write_text(render(version, signal, figures, previous, plot.name if plotted else None,
                               len(codes) if total is None else total))
    return {"markdown": str(markdown), "plots": [str(plot)] if plotted else [],
            **{k: figures[k] for k in ("items", "unique_sid_rate", "bucket_gini", "churn")}}
