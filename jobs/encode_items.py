"""Job entry point; see `sidlib.jobs.encode` for what it does.

    python jobs/encode_items.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/encode_items.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.cli import main
from sidlib.jobs import encode

if __name__ == "__main__":
    sys.exit(main(encode.run, description=encode.__doc__))
