"""The Databricks Asset Bundle (``databricks.yml`` + ``resources/``): every task runs an installed sidlib
console script with a config file and overrides that ``sidlib.config`` accepts, for every target."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidlib.config import load_config
from sidlib.jobs.registry import JOBS

from conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "databricks.yml"
REFERENCE = re.compile(r"\$\{([a-z_]+)\.([a-z_]+)\}")
#: The schedule's order: each task runs after the one before it.
PIPELINE = ["refresh", "build_sequences", "export_training_data"]


def _bundle() -> dict[str, Any]:
    bundle = yaml.safe_load(BUNDLE.read_text())
    for pattern in bundle["include"]:
        for file in sorted(BUNDLE.parent.glob(pattern)):
            included = yaml.safe_load(file.read_text())
            for kind, resources in included["resources"].items():
                bundle.setdefault("resources", {}).setdefault(kind, {}).update(
                    {name: {**resource, "_file": file} for name, resource in resources.items()})
    return bundle


def _resolve(value: str, variables: dict[str, str], target: str) -> str:
    known = {"var": variables, "workspace": {"file_path": str(REPO_ROOT)}, "bundle": {"target": target}}

    def substitute(found: re.Match[str]) -> str:
        scope, name = found[1], found[2]
        assert name in known.get(scope, {}), f"${{{scope}.{name}}} is not declared"
        return known[scope][name]
    return REFERENCE.sub(substitute, value)


def _job() -> dict[str, Any]:
    (job,) = _bundle()["resources"]["jobs"].values()
    return job


def test_targets_dev_and_prod_with_one_default() -> None:
    targets = _bundle()["targets"]
    assert set(targets) == {"dev", "prod"}
    assert [name for name, t in targets.items() if t.get("default")] == ["dev"]
    assert targets["dev"]["mode"] == "development" and targets["prod"]["mode"] == "production"
    assert targets["prod"]["workspace"]["root_path"]  # production mode requires one (or run_as)


def test_the_tasks_run_the_pipeline_in_order_one_run_at_a_time() -> None:
    job = _job()
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == PIPELINE and job["max_concurrent_runs"] == 1 and job["schedule"]["quartz_cron_expression"]
    for before, after in zip(PIPELINE, PIPELINE[1:]):
        assert tasks[after]["depends_on"] == [{"task_key": before}]
    clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
    variables = _bundle()["variables"]
    assert tasks["refresh"]["job_cluster_key"] == "${var.fit_cluster}" and variables["fit_cluster"]["default"] == "cpu"
    assert clusters == {"cpu", "gpu"}, "fit_cluster chooses between a CPU and a GPU job cluster"
    assert {tasks[t]["job_cluster_key"] for t in PIPELINE[1:]} <= clusters


def test_every_task_names_an_installed_console_script_of_a_registered_job() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.value.startswith("sidlib.")}
    for task in _job()["tasks"]:
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "sidlib"
        assert scripts.get(wheel["entry_point"]) == f"sidlib.jobs.entry:{task['task_key']}", wheel
        assert task["task_key"] in JOBS
        (whl,) = [lib["whl"] for lib in task["libraries"] if "whl" in lib]
        assert (_job()["_file"].parent / whl).parent.resolve() == REPO_ROOT / "dist"
    build = _bundle()["artifacts"]["sidlib_wheel"]["build"]
    assert build.startswith("rm -rf dist && ") and build.endswith("--wheel-dir dist .")  # no stale wheels attached


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_each_tasks_config_file_and_overrides_load(target: str) -> None:
    bundle = _bundle()
    variables = {name: spec["default"] for name, spec in bundle["variables"].items()}
    variables.update(bundle["targets"][target].get("variables", {}))
    for task in _job()["tasks"]:
        argv = [_resolve(arg, variables, target) for arg in task["python_wheel_task"]["parameters"]]
        assert argv[0] == "--conf"
        conf, overrides = Path(argv[1]), argv[2:]
        assert conf.is_file(), conf
        cfg = load_config(conf, overrides)
        assert cfg.engine.name == "active" and cfg.tables.catalog == variables["catalog"]
        assert cfg.tables.database == variables["schema"] and cfg.artifacts.root == variables["artifacts_root"]
