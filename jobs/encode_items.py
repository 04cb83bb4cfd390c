"""Entry script of the ``encode_items`` job (:mod:`sidlib.jobs.encode_items`):

    python jobs/encode_items.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/encode_items.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
