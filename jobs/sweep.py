"""Job entry point; see `sidlib.jobs.sweep` for what it does.

    python jobs/sweep.py --conf conf/demo.yaml sweep.quantizer=dpca sweep.bits=24
    python jobs/fit_quantizer.py --conf conf/generated/best_layout.yaml     # fit the winner
"""

import sys

from sidlib.cli import main
from sidlib.jobs import sweep

if __name__ == "__main__":
    sys.exit(main(sweep.run, description=sweep.__doc__))
