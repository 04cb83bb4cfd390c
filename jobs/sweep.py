"""Entry script of the ``sweep`` job (:mod:`sidlib.jobs.sweep`):

    python jobs/sweep.py --conf conf/demo.yaml sweep.quantizer=dpca sweep.bits=24
    python jobs/fit_quantizer.py --conf conf/generated/best_layout.yaml     # fit the winner
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
