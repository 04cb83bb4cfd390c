"""Entry script of the ``fit_quantizer`` job (:mod:`sidlib.jobs.fit_quantizer`):

    python jobs/fit_quantizer.py --conf conf/demo.yaml fit.quantizer=rq_kmeans fit.signals=[text,credits]
    spark-submit jobs/fit_quantizer.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
