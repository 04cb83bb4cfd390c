"""Layout grids and the sweep job: one task per layout, best layout written as a usable config."""

from __future__ import annotations

import dataclasses

import pytest

from sidlib.artifacts import ArtifactStore
from sidlib.config import load_config
from sidlib.errors import ConfigError
from sidlib.jobs import fit_quantizer, sweep
from sidlib.sweep import layout_bits, layout_grid


@pytest.mark.parametrize("name", ["dpca", "structured", "fsq", "rq_kmeans", "rq_gmm", "rq_vae"])
@pytest.mark.parametrize("bits", [12, 24])
def test_layout_grid_spends_the_budget(name: str, bits: int) -> None:
    grid = layout_grid(name, bits)
    assert grid, f"no layout for {name} at {bits} bits"
    assert all(abs(layout_bits(name, p) - bits) <= 1.0 for p in grid)
    assert len({repr(sorted(p.items())) for p in grid}) == len(grid)


def test_layout_grid_dpca_24_bits_is_15_trits() -> None:
    assert {(p["groups"], p["levels"]) for p in layout_grid("dpca", 24)} == {(1, 15), (3, 5), (5, 3)}
    with pytest.raises(ConfigError, match="no layout grid for quantizer 'kmeans'"):
        layout_grid("kmeans", 24)


def test_sweep_writes_best_layout_the_fit_job_uses(pipeline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    out = tmp_path / "best.yaml"
    cfg = dataclasses.replace(cfg, sweep=dataclasses.replace(
        cfg.sweep, quantizer="rq_kmeans", bits=8, output=str(out),
        grid=[{"levels": 2, "codebook_size": 16}, {"levels": 4, "codebook_size": 4}, {"levels": 1, "codebook_size": 256}]))
    summary = sweep.run(cfg, tables)
    results = {r["params"]: r for r in summary["results"]}
    assert len(results) == 3
    assert "fewer than codebook_size=256" in results['{"codebook_size": 256, "levels": 1}']["error"]
    ok = [r for r in summary["results"] if r["error"] is None]
    assert ok[0]["cosine_loss"] == min(r["cosine_loss"] for r in ok)
    assert summary["best"] in ({"levels": 2, "codebook_size": 16}, {"levels": 4, "codebook_size": 4})
    best_cfg = load_config(out)
    assert best_cfg.fit.quantizer == "rq_kmeans" and best_cfg.fit.params == summary["best"]
    assert best_cfg.tables == cfg.tables and best_cfg.artifacts == cfg.artifacts
    version = fit_quantizer.run(best_cfg, tables)["artifacts"][0]["version"]
    assert ArtifactStore(cfg.artifacts.root).get(version).manifest["fit"]["params"] == summary["best"]
