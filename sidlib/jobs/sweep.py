"""sweep: the SIDE paper's layout search for a bit budget (scalar levels, residual levels, product
groups for dpca/structured; codebook sizes for rq_*), one grid point per Spark task, scored on
held-out items; writes the best layout as a complete config file for ``fit_quantizer``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sidlib.config import SidlibConfig, to_dict
from sidlib.errors import ConfigError
from sidlib.jobs.fit_quantizer import quantizer_spec, split_expr
from sidlib.spark.embeddings import read_signal
from sidlib.spark.sampling import hash_fraction
from sidlib.spark.fit import LAYOUT_SCHEMA, evaluate_layout_in_task
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


def run(cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    import pyspark.sql.functions as F

    sweep = cfg.sweep
    out = checked_output(sweep.output)
    grid = list(sweep.grid) or layout_grid(sweep.quantizer, sweep.bits)[: sweep.max_points]
    if not grid:
        raise ConfigError(f"sweep grid is empty for {sweep.quantizer} at {sweep.bits} bits")
    data = read_signal(tables, sweep.signal, model_version=cfg.fit.model_version, quality=cfg.data_quality, job="sweep")
    sample = (data.frame.withColumn("holdout", F.expr(split_expr(cfg)))
              .withColumn("_h", F.expr(hash_fraction("item_id", f"sweep-{cfg.fit.seed}")))
              .orderBy("_h", "item_id").limit(sweep.sample_rows).drop("_h"))
    points = tables.spark.createDataFrame(pd.DataFrame({
        "grid_id": range(len(grid)), "params": [json.dumps(p, sort_keys=True) for p in grid]}))
    spec = quantizer_spec(dataclasses.replace(cfg.fit, quantizer=sweep.quantizer, bits=sweep.bits))
    log.info("sweep %s at %s bits over %d layouts on %d sample rows", sweep.quantizer, sweep.bits, len(grid),
             min(sweep.sample_rows, data.rows))
    results = (sample.crossJoin(points).groupBy("grid_id")
               .applyInPandas(evaluate_layout_in_task(spec), LAYOUT_SCHEMA).toPandas()
               .sort_values(["cosine_loss", "grid_id"]).reset_index(drop=True))
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
    return {"job": "sweep", "best": best, "config": str(out), "results": results.to_dict(orient="records")}
