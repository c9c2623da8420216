"""`python -m gpnn.worker [jobs|webhooks]`: one RQ worker configured from the environment."""

import logging
import sys

from redis.exceptions import RedisError

from gpnn.config import get_settings
from gpnn.worker.runner import Role, run_worker

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    role = Role(sys.argv[1]) if len(sys.argv) > 1 else Role.jobs
    try:
        run_worker(get_settings(), role=role)
    except ValueError as error:
        print(f"gpnn worker: {error}", file=sys.stderr)
        sys.exit(2)
    except RedisError as error:  # the supervisor starts a new worker, which waits for Redis
        print(f"gpnn worker: lost Redis ({error}); exiting", file=sys.stderr)
        sys.exit(3)
