"""sweep: the SIDE paper's layout search for a bit budget (scalar levels, residual levels, product
groups for dpca/structured; codebook sizes for rq_*), one grid point per Spark task, scored on
held-out items; writes the best layout as a complete config file for ``fit_quantizer``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sidlib.config import SidlibConfig, to_dict
from sidlib.errors import ConfigError
from sidlib.results import Result
from sidlib.spark.embeddings import read_signal
from sidlib.spark.fit import evaluate_layouts
from sidlib.spark.sampling import holdout_predicate
from sidlib.steps.fit import quantizer_spec
from sidlib.sweep import layout_grid

log = logging.getLogger(__name__)

#: First line of every config file the sweep writes: the only files it will overwrite.
HEADER = "# Written by the sweep job"


def checked_output(path: str) -> Path:
    """``sweep.output``, refused before any work when writing it would destroy a file the sweep did not
    write (a hand-kept config, or anything else the path happens to name)."""
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"sweep.output {out} is a directory; name a .yaml file")
    if out.exists():
        try:
            with out.open(errors="replace") as fh:
                ours = fh.readline().startswith(HEADER)
        except OSError as exc:
            raise ConfigError(f"sweep.output {out} cannot be read ({exc.strerror}); it will not be overwritten") from None
        if not ours:
            raise ConfigError(f"sweep.output {out} exists and was not written by the sweep job; "
                              f"it will not be overwritten: choose another path or move it")
    return out


@dataclass(frozen=True)
class SweepResult(Result):
    """The best layout, the config file written with it, and every grid point's score."""

    best: dict[str, Any]
    config: str
    results: list[dict[str, Any]]


def run(cfg: SidlibConfig, tables: Any) -> SweepResult:
    sweep = cfg.sweep
    out = checked_output(sweep.output)
    grid = list(sweep.grid) or layout_grid(sweep.quantizer, sweep.bits)[: sweep.max_points]
    if not grid:
        raise ConfigError(f"sweep grid is empty for {sweep.quantizer} at {sweep.bits} bits")
    data = read_signal(tables, sweep.signal, model_version=cfg.fit.model_versions.get(sweep.signal),
                       quality=cfg.data_quality, job="sweep")
    spec = quantizer_spec(dataclasses.replace(cfg.fit, quantizer=sweep.quantizer, bits=sweep.bits))
    log.info("sweep %s at %s bits over %d layouts on %d sample rows", sweep.quantizer, sweep.bits, len(grid),
             min(sweep.sample_rows, data.rows))
    results = evaluate_layouts(tables.spark, data.frame, grid, spec,
                               holdout=holdout_predicate(cfg.fit.seed, cfg.fit.holdout_fraction), seed=cfg.fit.seed,
                               sample_rows=sweep.sample_rows)
    for row in results.itertuples():
        if row.error:
            log.warning("layout %s failed: %s", row.params, row.error)
        else:
            log.info("layout %s: %.2f bits, held-out cosine loss %.4f, min utilization %.2f (%.1fs)",
                     row.params, row.bits, row.cosine_loss, row.utilization_min, row.seconds)
    fitted = results[results["error"].isna()]
    if fitted.empty:
        raise ConfigError(f"every layout of the sweep failed, first: {results['error'].iloc[0]}")
    best = json.loads(fitted["params"].iloc[0])
    best_cfg = dataclasses.replace(cfg, fit=dataclasses.replace(
        cfg.fit, signals=[sweep.signal], quantizer=sweep.quantizer, bits=sweep.bits, params={**cfg.fit.params, **best}))
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.tmp")
    staged.write_text(f"{HEADER}: best {sweep.quantizer} layout for {sweep.bits} bits on "
                      f"{sweep.signal}\n" + yaml.safe_dump(to_dict(best_cfg), sort_keys=False))
    os.replace(staged, out)  # a reader sees the old file or the new one, never half of it
    return SweepResult(best=best, config=str(out), results=results.to_dict(orient="records"))
