"""Run the ranker evaluation (sidlib.jobs.evaluate_ranker) and append its tables to benchmarks/RESULTS.md.

    python benchmarks/bench_ranker.py --conf conf/demo.yaml [key=value ...]

Takes the same config and overrides as ``jobs/evaluate_ranker.py``. The full summary is written next to
the report (``summary.json``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import append_section  # noqa: E402

from sidlib.cli import configure_logging, run_with_session  # noqa: E402
from sidlib.config import load_config  # noqa: E402
from sidlib.jobs import evaluate_ranker# noqa: E402
from sidlib.ranker.report import render  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conf")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    configure_logging()
    cfg = load_config(args.conf, args.overrides)
    summary = run_with_session(evaluate_ranker.run, cfg)
    Path(cfg.evaluate.report_dir, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    plots = {Path(p).stem: p for p in summary["report"]["plots"]}
    body = render(summary, cfg.evaluate.confidence, {"gains": plots.get("ne_gain", ""), "recall": plots.get("recall", "")})
    body += f"\nReport: `{summary['report']['markdown']}`; plots: {', '.join(f'`{p}`' for p in summary['report']['plots'])}; " \
            f"{summary['seconds']:.0f} s.\n"
    append_section("Ranker evaluation: id vs SID n-grams vs SIDE vs raw (evaluate_ranker)", body)


if __name__ == "__main__":
    main()
