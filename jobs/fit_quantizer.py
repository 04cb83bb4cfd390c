"""Job entry point; see `sidlib.jobs.fit` for what it does.

    python jobs/fit_quantizer.py --conf conf/demo.yaml fit.quantizer=rq_kmeans fit.signals=[text,credits]
    spark-submit jobs/fit_quantizer.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import fit

if __name__ == "__main__":
    sys.exit(main(fit.run, description=fit.__doc__))
