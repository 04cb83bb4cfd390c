"""Entry script of the ``refresh`` job (:mod:`sidlib.jobs.refresh`):

    python jobs/refresh.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/refresh.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
