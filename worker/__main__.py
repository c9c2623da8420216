"""`python -m gpnn.worker`: one RQ worker configured from the environment."""

import logging
import sys

from gpnn.config import get_settings
from gpnn.worker.runner import run_worker

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_worker(get_settings())
    except (ValueError, ConnectionError) as error:
        print(f"gpnn worker: {error}", file=sys.stderr)
        sys.exit(2)
