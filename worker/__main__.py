"""`python -m gpnn.worker [jobs|webhooks]`: one RQ worker configured from the environment."""

import sys

from redis.exceptions import RedisError

from gpnn.config import configure_logging, get_settings
from gpnn.worker.runner import Role, run_worker

if __name__ == "__main__":
    settings = get_settings()
    configure_logging(settings)
    role = Role(sys.argv[1]) if len(sys.argv) > 1 else Role.jobs
    try:
        run_worker(settings, role=role)
    except ValueError as error:
        print(f"gpnn worker: {error}", file=sys.stderr)
        sys.exit(2)
    except RedisError as error:  # the supervisor starts a new worker, which waits for Redis
        print(f"gpnn worker: lost Redis ({error}); exiting", file=sys.stderr)
        sys.exit(3)
