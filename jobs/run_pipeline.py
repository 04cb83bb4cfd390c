"""Entry script of the ``run_pipeline`` job (:mod:`sidlib.jobs.run_pipeline`):

    python jobs/run_pipeline.py --conf conf/demo.yaml [key=value ...]
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
