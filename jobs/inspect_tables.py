"""Entry script of the ``inspect_tables`` job (:mod:`sidlib.jobs.inspect_tables`):

    python jobs/inspect_tables.py --conf conf/demo.yaml [key=value ...]
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
